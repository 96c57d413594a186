"""Every registered node type meets the node contract (driven by the registry)."""

from __future__ import annotations

import inspect

import pytest
from typer.testing import CliRunner

import nodes  # noqa: F401 - registers the built-in families
from nodes.registry import REGISTRY, DuplicateNodeTypeError, NodeSpec, node
from switchboard.cli import app

SPECS = [spec for spec in REGISTRY if not spec.type.startswith("test.")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_node_contract(spec: NodeSpec) -> None:
    assert inspect.iscoroutinefunction(spec.fn)
    assert spec.summary and spec.summary.endswith("."), "a one-line summary ending in a full stop"
    schema = spec.params_schema()
    assert schema.get("additionalProperties") is False, "unknown params must be rejected"
    for name, prop in schema.get("properties", {}).items():
        assert prop.get("description"), f"param {name!r} needs a description (it is help text)"
    assert spec.output_schema, "the output needs a schema"
    if spec.ports is not None:
        assert spec.port_of is not None, "a branch node must say which port it took"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_node_appears_in_the_cli(spec: NodeSpec) -> None:
    result = CliRunner().invoke(app, ["nodes", spec.type])
    assert result.exit_code == 0
    assert spec.summary.split("`")[0] in result.stdout


def test_registering_a_duplicate_type_fails_loudly() -> None:
    with pytest.raises(DuplicateNodeTypeError, match=r"core\.set"):

        @node("core.set")
        async def again(ctx: object, values: dict) -> dict:  # type: ignore[type-arg]
            """Duplicate."""
            return values


def test_nodes_need_docstrings_and_async() -> None:
    with pytest.raises(TypeError, match="docstring"):

        @node("test.undocumented")
        async def undocumented(ctx: object) -> None:
            return None

    with pytest.raises(TypeError, match="async"):

        @node("test.sync")
        def sync(ctx: object) -> None:  # type: ignore[type-var]
            """Not async."""
