"""Stored workflows from the command line, on SQLite and on a real Postgres."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from switchboard.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    if database_url.startswith("postgresql"):
        behind = runner.invoke(app, ["list"])
        assert behind.exit_code == 2 and "switchboard db upgrade" in behind.stderr
        upgraded = runner.invoke(app, ["db", "upgrade"])
        assert upgraded.exit_code == 0 and "database at migration" in upgraded.stdout
    return database_url


def changed_copy(tmp_path: Path) -> Path:
    definition = yaml.safe_load((EXAMPLES / "branching.yaml").read_text())
    definition["inputs"]["threshold"]["default"] = 6
    path = tmp_path / "branching.yaml"
    path.write_text(yaml.safe_dump(definition))
    return path


@pytest.mark.usefixtures("database")
def test_apply_list_show_diff_rollback_archive_audit(tmp_path: Path) -> None:
    first = runner.invoke(app, ["apply", str(EXAMPLES / "branching.yaml"), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"name": "branching", "version": 1, "created": True}
    again = runner.invoke(app, ["apply", str(EXAMPLES / "branching.yaml")])
    assert "branching v1 unchanged" in again.stdout
    assert "stored branching v2" in runner.invoke(app, ["apply", str(changed_copy(tmp_path))]).stdout

    listed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert [(w["name"], w["latest_version"]) for w in listed] == [("branching", 2)]
    shown = json.loads(runner.invoke(app, ["show", "branching", "--version", "1", "--json"]).stdout)
    assert shown["version"] == 1 and shown["definition"]["inputs"]["threshold"]["default"] == 5

    diff = runner.invoke(app, ["diff", "branching", "1", "2"])
    assert "-    default: 5" in diff.stdout and "+    default: 6" in diff.stdout
    rolled = runner.invoke(app, ["rollback", "branching", "1"])
    assert "branching v3 = v1" in rolled.stdout
    archived = runner.invoke(app, ["archive", "branching"])
    assert archived.exit_code == 0
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == []

    audit = json.loads(runner.invoke(app, ["audit", "--json"]).stdout)
    assert [e["action"] for e in audit] == ["archive", "rollback", "apply", "apply"]
    assert all(e["actor"].startswith("cli:") for e in audit)


@pytest.mark.usefixtures("database")
def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["show", "nope"])
    assert missing.exit_code == 2 and "no stored workflow named 'nope'" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes: [{id: a, type: core.nope}]\n")
    invalid = runner.invoke(app, ["apply", str(bad)])
    assert invalid.exit_code == 2 and "unknown node type 'core.nope'" in invalid.stderr
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == []


@pytest.mark.usefixtures("database", "prefect_server")
def test_run_by_name_runs_the_latest_stored_version(tmp_path: Path) -> None:
    runner.invoke(app, ["apply", str(EXAMPLES / "branching.yaml")])
    runner.invoke(app, ["apply", str(changed_copy(tmp_path))])
    result = runner.invoke(app, ["run", "branching", "--json", "-i", "count=6"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["version"] == 2
    assert payload["inputs"] == {"count": 6, "threshold": 6}
    assert payload["nodes"]["small"]["output"] == {"text": "6 is at most 6"}
    unknown = runner.invoke(app, ["run", "no-such-workflow"])
    assert unknown.exit_code == 2 and "no stored workflow named 'no-such-workflow'" in unknown.stderr


@pytest.mark.usefixtures("prefect_server")
def test_runs_are_recorded_once_per_run_and_listed(database: str, tmp_path: Path) -> None:
    failing = tmp_path / "flaky.yaml"
    failing.write_text(
        yaml.safe_dump(
            {
                "name": "flaky",
                "inputs": {"fail": {"type": "boolean", "default": True}},
                "nodes": [
                    {"id": "a", "type": "core.set", "params": {"values": {"x": 1}}},
                    {"id": "gate", "type": "core.if", "params": {"condition": "{{ inputs.fail }}"}},
                    {"id": "boom", "type": "core.fail", "needs": ["gate:true"], "params": {"message": "broken"}},
                ],
            }
        )
    )
    runner.invoke(app, ["apply", str(EXAMPLES / "branching.yaml")])
    ok = json.loads(runner.invoke(app, ["run", "branching", "--json", "-i", "count=2"]).stdout)
    bad = json.loads(runner.invoke(app, ["run", str(failing), "--json"]).stdout)

    records = {r["run_id"]: r for r in json.loads(runner.invoke(app, ["runs", "--json"]).stdout)}
    assert set(records) == {ok["run_id"], bad["run_id"]}, "one row per run, none per node"
    good = records[ok["run_id"]]
    assert (good["workflow"], good["version"], good["status"], good["trigger"]) == ("branching", 1, "completed", "cli")
    assert good["flow_run_id"] == ok["flow_run_id"] and good["ended_at"] is not None
    assert good["triggered_by"].startswith("cli:") and good["inputs"] == {"count": 2, "threshold": 5}
    assert (records[bad["run_id"]]["status"], records[bad["run_id"]]["error"]) == (
        "failed",
        "node 'boom' failed: broken",
    )

    failed_only = json.loads(runner.invoke(app, ["runs", "--status", "failed", "--json"]).stdout)
    assert [r["run_id"] for r in failed_only] == [bad["run_id"]]
    by_workflow = json.loads(runner.invoke(app, ["runs", "--workflow", "branching", "--json"]).stdout)
    assert [r["run_id"] for r in by_workflow] == [ok["run_id"]]

    audit = json.loads(runner.invoke(app, ["audit", "--json"]).stdout)
    assert {e["target"] for e in audit if e["action"] == "run"} == {
        f"branching v1 run {ok['run_id']}",
        f"flaky run {bad['run_id']}",
    }


@pytest.mark.usefixtures("prefect_server")
async def test_a_record_left_running_is_reconciled_with_prefect(database: str) -> None:
    import switchboard
    from storage.db import create_engine, ensure_schema
    from storage.runs import RunStore

    # A run whose process died before recording its end: Prefect knows how it ended.
    unrecorded = await switchboard.arun(
        {"name": "lost", "nodes": [{"id": "x", "type": "core.fail", "params": {"message": "gone"}}]}, record=False
    )
    engine = create_engine(database)
    try:
        await ensure_schema(engine)
        await RunStore(engine).started(
            run_id=unrecorded.run_id,
            flow_run_id=unrecorded.flow_run_id,
            workflow="lost",
            version=None,
            trigger="cli",
            triggered_by="cli:test",
            inputs={},
        )
    finally:
        await engine.dispose()
    async with switchboard.default_client() as client:
        assert (await client.runs.get(unrecorded.run_id)).status == "failed"
        listed = await client.runs.list(workflow="lost")
    assert [(r.id, r.status) for r in listed] == [(unrecorded.run_id, "failed")]
    assert listed[0].ended_at is not None
