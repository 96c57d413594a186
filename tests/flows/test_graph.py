"""The run graph: a Mermaid flowchart from `validate --graph`, and with node states in every
run's Prefect artifact; each workflow is its own flow in Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

import switchboard
from flows.graph import mermaid
from flows.plan import build_plan
from switchboard.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

FOUR: dict[str, Any] = {
    "name": "graph-test",
    "nodes": [
        {"id": "check", "type": "core.if", "params": {"condition": "{{ true }}"}},
        {"id": "yes", "type": "text.template", "needs": ["check:true"], "params": {"template": "y"}},
        {"id": "no", "type": "text.template", "needs": ["check:false"], "params": {"template": "n"}},
        {"id": "end", "type": "core.set", "params": {"values": {"v": "{{ nodes.yes.output.text }}"}}},
        {"id": "each", "type": "core.set", "for_each": [1, 2], "params": {"values": {"i": "{{ item }}"}}},
    ],
}


def test_validate_prints_the_workflow_as_a_mermaid_flowchart() -> None:
    shown = CliRunner().invoke(app, ["validate", str(EXAMPLES / "branching.yaml"), "--graph"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert '  n_check["check<br/>core.if"]' in lines
    assert "  n_check -->|true| n_big" in lines and "  n_big --> n_verdict" in lines


def test_for_each_subworkflows_and_template_references_are_drawn_and_labels_escaped() -> None:
    hostile = {
        "name": "hostile",
        "nodes": [
            {"id": "call", "type": "core.workflow", "params": {"workflow": 'x"]; click n_call "http://evil'}},
            *FOUR["nodes"],
        ],
    }
    with pytest.raises(switchboard.DefinitionError):
        build_plan(hostile)  # the name is refused at validation already; draw the valid part
    text = mermaid(build_plan(FOUR))
    assert '  n_each[["each<br/>core.set<br/>for each"]]' in text
    assert "  n_yes -.-> n_end" in text, "a template reference is dotted"
    assert "n_end[" in text, "ids are prefixed: `end` is a Mermaid keyword"
    called = mermaid(
        build_plan({"name": "c", "nodes": [{"id": "call", "type": "core.workflow", "params": {"workflow": "child"}}]})
    )
    assert '  n_call["call<br/>core.workflow<br/>↳ child"]' in called
    templated = build_plan(
        {"name": "c", "nodes": [{"id": "call", "type": "core.workflow", "params": {"workflow": '{{ "a<b>\\"" }}'}}]}
    )
    drawn = mermaid(templated)
    assert "<b>" not in drawn and '\\"' not in drawn and "#60;b#62;" in drawn


@pytest.mark.usefixtures("prefect_server")
async def test_the_artifact_draws_the_run_with_node_states_and_the_workflow_is_its_own_flow() -> None:
    result = await switchboard.arun(FOUR, record=False)
    assert result.status == "completed" and result.flow_run_id
    async with get_client() as client:
        artifacts = await client.read_artifacts()
        flow_run = await client.read_flow_run(result.flow_run_id)  # type: ignore[arg-type]
        flow = await client.read_flow(flow_run.flow_id)
    (artifact,) = [a for a in artifacts if str(a.flow_run_id) == result.flow_run_id]
    markdown = str(artifact.data)
    assert markdown.count("```mermaid") == 1
    classes = {
        line.split()[-1]: set(line.split()[1].split(","))
        for line in markdown.splitlines()
        if line.startswith("  class ")
    }
    assert classes == {"completed": {"n_check", "n_yes", "n_end", "n_each"}, "skipped": {"n_no"}}
    assert "classDef skipped" in markdown and "classDef completed" in markdown
    assert flow.name == "workflow:graph-test"


def test_show_graph_draws_a_stored_version(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    runner = CliRunner()
    if database_url.startswith("postgresql"):
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    path = tmp_path / "four.yaml"
    path.write_text(yaml.safe_dump(FOUR))
    assert runner.invoke(app, ["apply", str(path)]).exit_code == 0
    shown = runner.invoke(app, ["show", "graph-test", "--graph"])
    assert shown.exit_code == 0 and shown.stdout == mermaid(build_plan(FOUR))
