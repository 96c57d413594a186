"""Core, text and JSON nodes called directly (no Prefect)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from nodes.errors import NodeConfigError, NodeError
from tests.nodes.context import call_node, make_context


async def test_set_outputs_the_mapping() -> None:
    assert await call_node("core.set", {"values": {"a": 1, "b": [2]}}) == {"a": 1, "b": [2]}


@pytest.mark.parametrize(
    ("condition", "result"),
    [(True, True), (False, False), ("true", True), ("No", False), ("", False), (0, False), (3, True), ([1], True)],
)
async def test_if_turns_conditions_into_booleans(condition: Any, result: bool) -> None:
    assert await call_node("core.if", {"condition": condition}) == {"result": result}


async def test_if_refuses_text_that_is_not_a_boolean() -> None:
    with pytest.raises(NodeConfigError, match="not a boolean"):
        await call_node("core.if", {"condition": "5 > 3"})


@pytest.mark.parametrize(
    ("value", "port"), [("bug", "bug"), (2, "2"), ("2", "2"), ("other", "default"), (True, "True"), ("true", "True")]
)
async def test_switch_picks_the_first_matching_case(value: Any, port: str) -> None:
    out = await call_node("core.switch", {"value": value, "cases": ["bug", 2, True]})
    assert out == {"value": value, "port": port}


async def test_merge_outputs_the_upstream_that_ran() -> None:
    ctx = make_context(upstream={"a": {"x": 1}, "b": None})
    assert await call_node("core.merge", {"mode": "any"}, ctx) == {"a": {"x": 1}, "b": None}


async def test_wait_and_fail() -> None:
    assert await call_node("core.wait", {"seconds": 0.01}) == {"waited": 0.01}
    with pytest.raises(ValidationError):
        await call_node("core.wait", {"seconds": -1})
    with pytest.raises(NodeError, match="stop here"):
        await call_node("core.fail", {"message": "stop here"})


async def test_template_and_regex() -> None:
    assert await call_node("text.template", {"template": 42}) == {"text": "42"}
    first = await call_node("text.regex", {"text": "a1 b22", "pattern": r"(?P<letter>[a-z])(\d+)"})
    assert first == {
        "matches": [{"match": "a1", "groups": ["a", "1"], "named": {"letter": "a"}, "start": 0}],
        "truncated": False,
    }
    every = await call_node("text.regex", {"text": "a1 b22", "pattern": r"\d+", "all": True})
    assert [m["match"] for m in every["matches"]] == ["1", "22"]
    assert every["truncated"] is False
    assert await call_node("text.regex", {"text": "none", "pattern": r"\d"}) == {"matches": [], "truncated": False}
    with pytest.raises(NodeConfigError, match="not a valid regex"):
        await call_node("text.regex", {"text": "x", "pattern": "("})


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (r"(?i)straße", "STRASSE straße", ["straße"]),  # Python's re semantics (no full case folding)
        (r"\b\w+\b", "héllo wörld", ["héllo", "wörld"]),
        (r"\p{Lu}\p{Ll}+", "Hello World", ["Hello", "World"]),  # regex-module extensions work too
        (r"a++b", "aaab", ["aaab"]),
        (r"(?>a+)b", "aab", ["aab"]),
        (r"x*", "ab", ["", "", ""]),  # empty matches, as Python's re finds them
    ],
)
async def test_regex_speaks_pythons_syntax(pattern: str, text: str, found: list[str]) -> None:
    out = await call_node("text.regex", {"text": text, "pattern": pattern, "all": True})
    assert [m["match"] for m in out["matches"]] == found


async def test_json_query() -> None:
    data = {"issues": [{"n": 1, "state": "open"}, {"n": 2, "state": "closed"}]}
    out = await call_node("json.query", {"data": data, "expression": "issues[?state=='open'].n"})
    assert out == {"result": [1]}
    with pytest.raises(NodeConfigError, match="not valid JMESPath"):
        await call_node("json.query", {"data": data, "expression": "issues[?"})
