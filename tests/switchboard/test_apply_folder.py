"""``switchboard apply DIR``: a folder of workflows in one transaction, pruned and dry-run for CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from switchboard.cli import app

runner = CliRunner()


@pytest.fixture
def database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    if database_url.startswith("postgresql"):
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return database_url


def child(name: str = "child", text: str = "hi") -> dict[str, Any]:
    return {"name": name, "nodes": [{"id": "say", "type": "text.template", "params": {"template": text}}]}


def caller(name: str, calls: str) -> dict[str, Any]:
    return {"name": name, "nodes": [{"id": "call", "type": "core.workflow", "params": {"workflow": calls}}]}


def write(folder: Path, files: dict[str, Any]) -> Path:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return folder


def changes(result: Any) -> dict[str, tuple[str, int]]:
    return {c["name"]: (c["change"], c["version"]) for c in json.loads(result.stdout)["changes"]}


@pytest.mark.usefixtures("database")
def test_a_folder_is_applied_pruned_and_dry_run(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "workflows",
        {
            "child.yaml": child(),
            "team/parent.yml": caller("parent", "child"),
            "old.json": json.dumps(child("old")),
            "README.md": "not a workflow",
            ".hidden/skip.yaml": "{{ not even yaml",
        },
    )
    first = runner.invoke(app, ["apply", str(folder), "--json"])
    assert first.exit_code == 0, first.output
    assert changes(first) == {"child": ("created", 1), "old": ("created", 1), "parent": ("created", 1)}

    (folder / "old.json").unlink()
    write(folder, {"child.yaml": child(text="hello")})
    planned = runner.invoke(app, ["apply", str(folder), "--prune", "--dry-run", "--json"])
    assert planned.exit_code == 3, planned.output
    assert changes(planned) == {"child": ("new version", 2), "parent": ("unchanged", 1), "old": ("archived", 1)}
    listed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    assert {w["name"]: w["latest_version"] for w in listed} == {"child": 1, "old": 1, "parent": 1}, (
        "a dry run changes nothing"
    )

    shown = runner.invoke(app, ["apply", str(folder), "--prune"])
    assert shown.exit_code == 0, shown.output
    assert "applied: 1 new version, 1 archived" in shown.stdout
    assert {w["name"] for w in json.loads(runner.invoke(app, ["list", "--json"]).stdout)} == {"child", "parent"}

    settled = runner.invoke(app, ["apply", str(folder), "--prune", "--dry-run"])
    assert settled.exit_code == 0 and "would apply: nothing to change" in settled.stdout


@pytest.mark.usefixtures("database")
def test_every_problem_of_every_file_is_listed_and_nothing_is_stored(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "broken",
        {
            "good.yaml": child("good"),
            "typo.yaml": {"name": "typo", "nodes": [{"id": "a", "type": "core.sett", "params": {}}]},
            "again.yaml": child("good"),
            "calls.yaml": caller("calls", "nowhere"),
            "ping.yaml": caller("ping", "pong"),
            "pong.yaml": caller("pong", "ping"),
            "bad.yaml": "name: [unclosed",
        },
    )
    result = runner.invoke(app, ["apply", str(folder)])
    assert result.exit_code == 2
    text = result.stderr
    assert "typo.yaml: node 'a': type: unknown node type 'core.sett'" in text
    assert "good.yaml: workflow 'good' is also defined in again.yaml" in text or (
        "again.yaml: workflow 'good' is also defined in good.yaml" in text
    )
    assert "calls.yaml: node 'call': calls workflow 'nowhere', which is neither in the folder nor stored" in text
    assert "ping.yaml: node 'call': calls itself: ping → pong → ping" in text
    assert "bad.yaml" in text
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == [], "all or nothing"


@pytest.mark.usefixtures("database")
def test_folder_only_options_and_empty_folders_are_refused(tmp_path: Path) -> None:
    file = write(tmp_path, {"one.yaml": child()}) / "one.yaml"
    single = runner.invoke(app, ["apply", str(file), "--dry-run"])
    assert single.exit_code == 2 and "--prune and --dry-run apply a folder" in single.stderr
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["apply", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "holds no *.yaml, *.yml or *.json workflow files" in empty.stderr
