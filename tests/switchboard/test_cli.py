"""The command line as a user runs it: exit codes, messages, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from switchboard.cli import app
from tests.fakes.http import FakeHTTP, Reply

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def write(tmp_path: Path, definition: dict[str, Any], name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(definition))
    return path


def test_validate_accepts_every_example() -> None:
    for example in sorted(EXAMPLES.glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(example)])
        assert result.exit_code == 0, result.output
        assert "valid" in result.stdout


def test_validate_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "name": "broken",
            "nodes": [
                {"id": "a", "type": "core.sett", "params": {}},
                {"id": "b", "type": "core.wait", "params": {"seconds": "soon"}},
                {"id": "c", "type": "core.set", "needs": ["nobody"], "params": {"values": {}}},
                {"id": "d", "type": "core.set", "params": {"values": {"x": "{{ nodes.e.output }}"}}},
                {"id": "e", "type": "core.set", "params": {"values": {"x": "{{ nodes.d.output }}"}}},
            ],
        },
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    text = result.stderr
    assert "4 problem(s)" in text
    assert "node 'a': type: unknown node type 'core.sett'; did you mean 'core.set'" in text
    assert "node 'b': params.seconds" in text
    assert "node 'c': needs[0]: unknown node 'nobody'" in text
    assert "cycle: d -> e -> d" in text or "cycle: e -> d -> e" in text


def test_validate_reports_unreadable_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read workflow file" in result.stderr


def test_nodes_lists_every_type_and_shows_one_in_full() -> None:
    listing = runner.invoke(app, ["nodes"])
    assert listing.exit_code == 0
    for node_type in ("core.set", "core.if", "http.request", "json.query", "text.regex"):
        assert node_type in listing.stdout
    detail = runner.invoke(app, ["nodes", "core.switch"])
    assert detail.exit_code == 0
    assert "cases" in detail.stdout and "ports" in detail.stdout
    unknown = runner.invoke(app, ["nodes", "core.swich"])
    assert unknown.exit_code == 2 and "did you mean 'core.switch'" in unknown.stderr


def test_schema_is_a_json_schema_for_workflow_files() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Switchboard workflow"
    assert {"name", "nodes", "inputs"} <= set(schema["properties"])


@pytest.mark.usefixtures("prefect_server")
def test_run_shows_progress_and_the_node_table(caplog: pytest.LogCaptureFixture) -> None:
    result = runner.invoke(app, ["run", str(EXAMPLES / "branching.yaml"), "-i", "count=9"])
    assert result.exit_code == 0, result.output
    assert not [r for r in caplog.records if "run listener failed" in r.getMessage()], "every event kind is handled"
    assert "✔ check completed" in result.stdout
    assert "– small skipped" in result.stdout
    assert "9 is bigger than 5" in result.stdout
    assert result.stdout.rstrip().endswith("completed")


@pytest.mark.usefixtures("prefect_server")
def test_run_json_prints_only_the_run_result() -> None:
    result = runner.invoke(app, ["run", str(EXAMPLES / "for-each.yaml"), "--json", "-i", 'names=["x","yy"]'])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) >= {"run_id", "flow_run_id", "workflow", "version", "status", "inputs", "nodes", "error"}
    assert payload["status"] == "completed"
    assert payload["inputs"] == {"names": ["x", "yy"]}
    greet = payload["nodes"]["greet"]
    assert set(greet) == {"status", "attempts", "duration_ms", "cached", "output", "error"}
    assert [o["text"] for o in greet["output"]] == ["Hello, X! You are number 1.", "Hello, Yy! You are number 2."]


@pytest.mark.usefixtures("prefect_server")
def test_run_exit_codes(tmp_path: Path) -> None:
    failing = write(
        tmp_path, {"name": "fails", "nodes": [{"id": "x", "type": "core.fail", "params": {"message": "no"}}]}
    )
    result = runner.invoke(app, ["run", str(failing), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"

    bad_input = runner.invoke(app, ["run", str(EXAMPLES / "branching.yaml"), "-i", "count=many"])
    assert bad_input.exit_code == 2
    assert "inputs.count: expected integer, got 'many'" in bad_input.stderr

    missing = runner.invoke(app, ["run", str(EXAMPLES / "branching.yaml")])
    assert missing.exit_code == 2
    assert "inputs.count: required integer input is missing" in missing.stderr

    not_key_value = runner.invoke(app, ["run", str(EXAMPLES / "branching.yaml"), "-i", "count"])
    assert not_key_value.exit_code == 2


@pytest.mark.usefixtures("prefect_server")
def test_retry_resumes_a_failed_run(tmp_path: Path, fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HTTP_ALLOW_HOSTS", "127.0.0.1")
    fake_http.script("POST", "/once", Reply(200, {"done": True}))
    fake_http.script("GET", "/later", Reply(503, "not yet"), Reply(200, {"now": True}))
    path = write(
        tmp_path,
        {
            "name": "resumable",
            "nodes": [
                {"id": "once", "type": "http.request", "params": {"method": "POST", "url": fake_http.url("/once")}},
                {"id": "later", "type": "http.request", "needs": ["once"], "params": {"url": fake_http.url("/later")}},
            ],
        },
    )
    first = runner.invoke(app, ["run", str(path), "--json"])
    assert first.exit_code == 1
    run_id = json.loads(first.stdout)["run_id"]

    fake_http.script("GET", "/later", Reply(503, "not yet"), Reply(200, {"now": True}))
    human = runner.invoke(app, ["run", str(path)])
    assert human.exit_code == 1
    assert "retry with: switchboard retry" in human.stdout
    human_run_id = human.stdout.split("retry with: switchboard retry ")[1].split()[0]
    assert human_run_id != run_id

    retried = runner.invoke(app, ["retry", human_run_id, "--json"])
    assert retried.exit_code == 0, retried.output
    payload = json.loads(retried.stdout)
    assert payload["resumed_from"] == human_run_id
    assert payload["nodes"]["once"]["cached"] is True
    assert payload["nodes"]["later"]["output"]["json"] == {"now": True}
    assert len(fake_http.calls("/once")) == 2  # the first run and the second `run`, not the retry

    again = runner.invoke(app, ["retry", payload["run_id"]])
    assert again.exit_code == 2 and "only failed runs can be retried" in again.stderr
    unknown = runner.invoke(app, ["retry", "nosuchrun"])
    assert unknown.exit_code == 2 and "no run with id" in unknown.stderr


def test_cache_hits_across_processes(
    tmp_path: Path, fake_http: FakeHTTP, prefect_server: str, switchboard_home: str
) -> None:
    """Two separate `switchboard run` processes: the second reuses the first's cached result."""
    fake_http.script("GET", "/expensive", Reply(200, {"value": 42}))
    path = write(
        tmp_path,
        {
            "name": "cached",
            "nodes": [
                {
                    "id": "get",
                    "type": "http.request",
                    "cache": {"ttl": 600},
                    "params": {"url": fake_http.url("/expensive")},
                }
            ],
        },
    )
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "SWITCHBOARD_HOME": switchboard_home,
        "SWITCHBOARD_HTTP_ALLOW_HOSTS": "127.0.0.1",
        "PREFECT_HOME": str(Path(switchboard_home) / "prefect"),
    }
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", "run", str(path), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(json.loads(proc.stdout))
    assert [o["nodes"]["get"]["cached"] for o in outputs] == [False, True]
    assert outputs[1]["nodes"]["get"]["output"]["json"] == {"value": 42}
    assert len(fake_http.calls("/expensive")) == 1
