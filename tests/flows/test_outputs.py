"""Workflow outputs: declared with ``outputs:``, checked at validate, rendered when a run
completes, and shown in the run result, the CLI and the Prefect artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

import switchboard
from flows.model import MAX_OUTPUTS, DefinitionError
from flows.plan import build_plan
from flows.results import RunResult
from switchboard.cli import app

pytestmark = pytest.mark.usefixtures("prefect_server")

BRANCHY: dict[str, Any] = {
    "name": "outputs-test",
    "inputs": {"n": {"type": "integer", "default": 5}},
    "outputs": {
        "doubled": "{{ nodes.calc.output.v * 2 }}",
        "label": "n={{ inputs.n }}",
        "small": "{{ nodes.other.output.v if nodes.other.status == 'completed' else none }}",
        "summary": {"count": "{{ inputs.n }}", "fixed": [1, "two"]},
        "api_token": "{{ 's3cr3t' }}",
    },
    "nodes": [
        {"id": "check", "type": "core.if", "params": {"condition": "{{ inputs.n > 3 }}"}},
        {"id": "calc", "type": "core.set", "needs": ["check:true"], "params": {"values": {"v": "{{ inputs.n }}"}}},
        {"id": "other", "type": "core.set", "needs": ["check:false"], "params": {"values": {"v": 1}}},
    ],
}


def _problems(definition: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        build_plan(definition)
    return [str(problem) for problem in caught.value.problems]


async def test_a_completed_run_returns_its_declared_outputs() -> None:
    result = await switchboard.arun(BRANCHY)
    assert result.status == "completed"
    assert result.outputs == {
        "doubled": 10,
        "label": "n=5",
        "small": None,
        "summary": {"count": 5, "fixed": [1, "two"]},
        "api_token": "s3cr3t",
    }
    as_dict = result.to_dict()
    assert as_dict["outputs"] == result.outputs
    assert RunResult.from_dict(json.loads(json.dumps(as_dict))).outputs == result.outputs


async def test_without_outputs_the_result_has_none() -> None:
    result = await switchboard.arun(
        {"name": "plain", "nodes": [{"id": "a", "type": "core.set", "params": {"values": {}}}]}
    )
    assert result.status == "completed" and result.outputs == {} and result.to_dict()["outputs"] == {}


async def test_a_failed_run_declares_no_outputs() -> None:
    failing = {
        **BRANCHY,
        "nodes": [*BRANCHY["nodes"], {"id": "boom", "type": "core.fail", "params": {"message": "no"}}],
    }
    result = await switchboard.arun(failing)
    assert result.status == "failed" and result.outputs == {}


async def test_an_output_that_cannot_be_built_fails_the_run_and_names_the_output() -> None:
    broken = {**BRANCHY, "outputs": {"bad": "{{ nodes.other.output.v }}"}}  # `other` is skipped
    result = await switchboard.arun(broken)
    assert result.status == "failed" and result.outputs == {}
    assert result.error is not None and "outputs.bad" in result.error and "has no attribute 'v'" in result.error
    assert all(node.status != "failed" for node in result.nodes.values()), "every node itself finished"


def test_outputs_are_checked_at_validate_with_every_problem_named() -> None:
    problems = _problems(
        {
            **BRANCHY,
            "outputs": {
                "typo": "{{ nodes.calcc.output.v }}",
                "undeclared": "{{ inputs.m }}",
                "looped": "{{ item }}",
                "syntax": "{{ nodes.calc.output.v +* 2 }}",
            },
        }
    )
    assert any(p.startswith("outputs.typo: references unknown node 'calcc'") and "calc" in p for p in problems)
    assert any(p.startswith("outputs.undeclared: uses undeclared input 'm'") for p in problems)
    assert any(p.startswith("outputs.looped: uses `item`/`index`") for p in problems)
    assert any(p.startswith("outputs.syntax") for p in problems)
    assert len(problems) == 4


def test_output_names_and_count_are_bounded() -> None:
    (bad_name,) = _problems({**BRANCHY, "outputs": {"not-an-identifier": 1}})
    assert "outputs.not-an-identifier" in bad_name
    (too_many,) = _problems({**BRANCHY, "outputs": {f"o{i}": i for i in range(MAX_OUTPUTS + 1)}})
    assert too_many.startswith("outputs:") and str(MAX_OUTPUTS) in too_many


async def test_the_artifact_lists_the_outputs_redacted() -> None:
    result = await switchboard.arun(BRANCHY)
    async with get_client() as client:
        artifacts = await client.read_artifacts()
    (artifact,) = [a for a in artifacts if str(a.flow_run_id) == result.flow_run_id]
    markdown = str(artifact.data)
    assert "| output | value |" in markdown and "| doubled | 10 |" in markdown and "| small | null |" in markdown
    assert '| api_token | "[redacted]" |' in markdown and "s3cr3t" not in markdown


def test_the_cli_prints_outputs_and_json_carries_them(tmp_path: Path) -> None:
    path = tmp_path / "outputs.yaml"
    path.write_text(yaml.safe_dump(BRANCHY))
    runner = CliRunner()
    shown = runner.invoke(app, ["run", str(path), "-i", "n=7"])
    assert shown.exit_code == 0, shown.output
    assert "doubled = 14" in shown.stdout and 'label = "n=7"' in shown.stdout and "small = null" in shown.stdout
    assert "s3cr3t" not in shown.stdout
    as_json = runner.invoke(app, ["run", str(path), "--json", "-i", "n=7"])
    assert json.loads(as_json.stdout)["outputs"]["summary"] == {"count": 7, "fixed": [1, "two"]}
