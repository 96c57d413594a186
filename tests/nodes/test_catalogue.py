"""docs/nodes.md is generated from the registry and must match it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import nodes
from nodes import catalogue
from nodes.registry import REGISTRY
from switchboard.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "nodes.md"


def builtin_specs() -> list[nodes.NodeSpec]:
    """Built-in nodes only: test modules register their own (test.*) nodes into the registry."""
    return [spec for spec in REGISTRY if spec.fn.__module__.startswith("nodes.")]


def test_docs_nodes_md_is_current() -> None:
    assert DOC.read_text() == catalogue.markdown(builtin_specs()), "docs/nodes.md is stale: run `make docs`"


def test_every_builtin_node_is_in_the_reference_with_params_and_outputs() -> None:
    text = catalogue.markdown(builtin_specs())
    for spec in builtin_specs():
        assert f"### `{spec.type}`" in text
    assert "| `repo` | string | required | The repository, `owner/name`. |" in text
    assert "| `file` | FileRef \\| null | optional | The stored copy of a binary file. |" in text


def test_cli_prints_the_same_markdown() -> None:
    outcome = CliRunner().invoke(app, ["nodes", "--markdown"])
    assert outcome.exit_code == 0
    assert "### `github.read_file`" in outcome.stdout and "Credential: a `github` credential" in outcome.stdout
