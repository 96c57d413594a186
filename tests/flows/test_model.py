"""Workflow definitions: loading, structural validation, retry delays and run inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.model import DefinitionError, InputError, Problem, Workflow, load_definition

YAML_TEXT = """\
name: issue-triage
description: Summarize a new issue
inputs:
  repo: {type: string, required: true}
  issue: {type: integer, required: true}
  dry: {type: boolean, default: false}
nodes:
  - id: fetch
    type: http.request
    params: {url: "https://example.com/{{ inputs.repo }}"}
    retries: 3
    retry_delay: [1, 5, 30]
  - id: is_bug
    type: core.if
    params: {condition: "{{ 'bug' in nodes.fetch.output.json.labels }}"}
"""


def minimal(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "wf", "nodes": [{"id": "a", "type": "core.set", "params": {"values": {}}}]}
    raw.update(overrides)
    return raw


def problems_of(raw: Any) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        load_definition(raw)
    return info.value.problems


def find(problems: list[Problem], *, node: str | None = None, field: str | None = None) -> list[Problem]:
    return [p for p in problems if p.node == node and p.field == field]


# --- loading -----------------------------------------------------------------------------------


def assert_triage(workflow: Workflow) -> None:
    assert workflow.name == "issue-triage"
    assert [n.id for n in workflow.nodes] == ["fetch", "is_bug"]
    assert workflow.inputs["issue"].type == "integer"
    assert workflow.inputs["issue"].required is True
    assert workflow.inputs["dry"].default is False
    assert workflow.node("fetch").retries == 3
    assert workflow.node("fetch").retry_delay == [1, 5, 30]
    assert workflow.node("is_bug").params == {"condition": "{{ 'bug' in nodes.fetch.output.json.labels }}"}


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_load_yaml_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"triage{suffix}"
    path.write_text(YAML_TEXT, encoding="utf-8")
    assert_triage(load_definition(path))
    assert_triage(load_definition(str(path)))


def test_load_json_file(tmp_path: Path) -> None:
    path = tmp_path / "triage.json"
    path.write_text(json.dumps(yaml.safe_load(YAML_TEXT)), encoding="utf-8")
    assert_triage(load_definition(path))
    assert_triage(load_definition(str(path)))


def test_load_yaml_string() -> None:
    assert_triage(load_definition(YAML_TEXT))


def test_load_one_line_yaml_string() -> None:
    workflow = load_definition("{name: one-line, nodes: [{id: a, type: core.set}]}")
    assert workflow.name == "one-line"
    assert workflow.nodes[0].id == "a"


def test_load_dict() -> None:
    assert_triage(load_definition(yaml.safe_load(YAML_TEXT)))


def test_load_workflow_returns_it_unchanged() -> None:
    workflow = load_definition(YAML_TEXT)
    assert load_definition(workflow) is workflow


def test_node_lookup_by_id() -> None:
    workflow = load_definition(YAML_TEXT)
    assert workflow.node("is_bug").type == "core.if"
    with pytest.raises(KeyError):
        workflow.node("nope")


def test_missing_file_is_a_definition_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(DefinitionError) as info:
        load_definition(path)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)
    assert "cannot read workflow file" in str(info.value)
    assert "No such file" in str(info.value)


def test_missing_file_given_as_text_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.yml"
    with pytest.raises(DefinitionError, match="cannot read workflow file"):
        load_definition(str(path))


def test_broken_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnodes: [\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_definition(path)
    assert len(info.value.problems) == 1
    assert "not valid YAML" in info.value.problems[0].message
    assert str(path) in str(info.value)


def test_broken_yaml_string() -> None:
    with pytest.raises(DefinitionError, match="not valid YAML"):
        load_definition("name: x\nnodes: [\n")


def test_broken_json_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", "nodes": [', encoding="utf-8")
    with pytest.raises(DefinitionError, match="not valid JSON"):
        load_definition(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_definition_that_is_not_a_mapping(text: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1
    assert "must be a mapping" in problems[0].message


# --- structural validation --------------------------------------------------------------------


def test_all_structural_errors_are_reported_at_once() -> None:
    raw = {
        "name": "Bad_Name",
        "surprise": 1,
        "nodes": [
            {"id": "a-b", "type": "core.set", "retries": -1, "bogus": 1},
            {"id": "ok", "type": "core.wait", "concurrency": 2},
            {"type": "core.set"},
        ],
    }
    problems = problems_of(raw)
    assert len(problems) == 7

    (name,) = find(problems, field="name")
    assert "pattern" in name.message
    (extra,) = find(problems, field="surprise")
    assert "Extra inputs are not permitted" in extra.message
    (bad_id,) = find(problems, node="a-b", field="id")
    assert "pattern" in bad_id.message
    (retries,) = find(problems, node="a-b", field="retries")
    assert "greater than or equal to 0" in retries.message
    (bogus,) = find(problems, node="a-b", field="bogus")
    assert "Extra inputs are not permitted" in bogus.message
    (concurrency,) = [p for p in problems if p.node == "ok"]
    assert "`concurrency` only applies to a node with `for_each`" in concurrency.message
    # A node without an id is named by its position.
    (missing_id,) = find(problems, node="#3", field="id")
    assert "required" in missing_id.message.lower()


def test_error_text_lists_every_problem_with_node_and_field() -> None:
    with pytest.raises(DefinitionError) as info:
        load_definition(minimal(nodes=[{"id": "x", "type": "core.set", "retries": -1}], extra=1))
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "node 'x': retries:" in text
    assert "extra:" in text


@pytest.mark.parametrize("name", ["my-flow", "flow2", "0-start", "a"])
def test_valid_names(name: str) -> None:
    assert load_definition(minimal(name=name)).name == name


@pytest.mark.parametrize("name", ["My-Flow", "-lead", "has space", "under_score", ""])
def test_invalid_names(name: str) -> None:
    (problem,) = problems_of(minimal(name=name))
    assert problem.field == "name"


@pytest.mark.parametrize("node_id", ["fetch", "_x", "Step_2"])
def test_valid_node_ids(node_id: str) -> None:
    assert load_definition(minimal(nodes=[{"id": node_id, "type": "core.set"}])).nodes[0].id == node_id


@pytest.mark.parametrize("node_id", ["a-b", "2fast", "has space", "a.b", "x" * 65])
def test_invalid_node_ids(node_id: str) -> None:
    (problem,) = problems_of(minimal(nodes=[{"id": node_id, "type": "core.set"}]))
    assert problem.node == node_id
    assert problem.field == "id"


def test_workflow_needs_at_least_one_node() -> None:
    (problem,) = problems_of(minimal(nodes=[]))
    assert problem.field == "nodes"
    assert "at least 1" in problem.message


def test_missing_nodes_key() -> None:
    (problem,) = problems_of({"name": "wf"})
    assert problem.field == "nodes"
    assert "required" in problem.message.lower()


@pytest.mark.parametrize(
    ("node_patch", "field", "fragment"),
    [
        ({"version": 0}, "version", "greater than or equal to 1"),
        ({"timeout": 0}, "timeout", "greater than 0"),
        ({"on_error": "ignore"}, "on_error", "'fail' or 'continue'"),
        ({"retries": 51}, "retries", "less than or equal to 50"),
        ({"for_each": [1], "concurrency": 0}, "concurrency", "greater than or equal to 1"),
        ({"cache": {"ttl": -5}}, "cache.ttl", "greater than 0"),
    ],
)
def test_node_field_errors(node_patch: dict[str, Any], field: str, fragment: str) -> None:
    (problem,) = problems_of(minimal(nodes=[{"id": "n", "type": "core.set", **node_patch}]))
    assert problem.node == "n"
    assert problem.field == field
    assert fragment in problem.message


def test_concurrency_with_for_each_is_fine() -> None:
    node = load_definition(minimal(nodes=[{"id": "n", "type": "t", "for_each": "{{ x }}", "concurrency": 4}])).nodes[0]
    assert node.concurrency == 4


def test_schedule_needs_exactly_one_kind() -> None:
    (problem,) = problems_of(minimal(schedule={"timezone": "UTC"}))
    assert problem.field == "schedule"
    assert "exactly one of `cron` or `interval`" in problem.message


def test_unknown_input_type() -> None:
    (problem,) = problems_of(minimal(inputs={"a": {"type": "strng"}}))
    assert problem.field == "inputs.a.type"


def test_version_alias() -> None:
    node = load_definition(minimal(nodes=[{"id": "n", "type": "core.set", "version": 2}])).nodes[0]
    assert node.type_version == 2


# --- retry delays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_patch", "expected"),
    [
        ({}, (0.0, None)),
        ({"retries": 2, "retry_delay": 5}, (5.0, None)),
        ({"retries": 3, "retry_delay": [1, 5, 30]}, ([1.0, 5.0, 30.0], None)),
        ({"retries": 4, "retry_delay": {"exponential": 2, "max": 10, "jitter": 0.2}}, ([2.0, 4.0, 8.0, 10.0], 0.2)),
        ({"retries": 3, "retry_delay": {"exponential": 1}}, ([1.0, 2.0, 4.0], None)),
        ({"retry_delay": {"exponential": 2}}, ([2.0], None)),
    ],
)
def test_retry_delays(node_patch: dict[str, Any], expected: tuple[Any, Any]) -> None:
    node = load_definition(minimal(nodes=[{"id": "n", "type": "t", **node_patch}])).nodes[0]
    assert node.retry_delays() == expected


@pytest.mark.parametrize(
    ("retry_delay", "field", "fragment"),
    [
        (-1, "retry_delay", ">= 0"),
        ([1, -2], "retry_delay", ">= 0"),
        ({"exponential": 0}, "retry_delay.exponential", "greater than 0"),
        ({"exponential": 1, "jitter": 2}, "retry_delay.jitter", "less than or equal to 1"),
        ({"exponential": 1, "max": 0}, "retry_delay.max", "greater than 0"),
        ({"exponential": 1, "cap": 3}, "retry_delay.cap", "Extra inputs"),
    ],
)
def test_bad_retry_delay(retry_delay: Any, field: str, fragment: str) -> None:
    problems = problems_of(minimal(nodes=[{"id": "n", "type": "t", "retry_delay": retry_delay}]))
    assert all(p.node == "n" for p in problems)
    assert any(p.field == field and fragment in p.message for p in problems), problems


def test_bad_retry_delay_text() -> None:
    problems = problems_of(minimal(nodes=[{"id": "n", "type": "t", "retry_delay": "soon"}]))
    assert problems
    assert all(p.node == "n" and p.field == "retry_delay" for p in problems)


# --- run inputs -------------------------------------------------------------------------------

INPUTS = {
    "s": {"type": "string", "required": True},
    "i": {"type": "integer", "default": 7},
    "n": {"type": "number"},
    "b": {"type": "boolean", "default": False},
    "o": {"type": "object"},
    "a": {"type": "array"},
    "e": {"type": "string", "enum": ["red", "blue"]},
}


@pytest.fixture
def workflow() -> Workflow:
    return load_definition(minimal(inputs=INPUTS))


def input_problems(workflow: Workflow, given: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        workflow.resolve_inputs(given, **kwargs)
    assert all(p.node is None for p in info.value.problems)
    return {p.field or "": p.message for p in info.value.problems}


def test_defaults_are_filled(workflow: Workflow) -> None:
    assert workflow.resolve_inputs({"s": "hi"}) == {
        "s": "hi",
        "i": 7,
        "n": None,
        "b": False,
        "o": None,
        "a": None,
        "e": None,
    }


def test_none_counts_as_not_given(workflow: Workflow) -> None:
    assert workflow.resolve_inputs({"s": "x", "i": None})["i"] == 7


def test_falsy_values_are_kept(workflow: Workflow) -> None:
    resolved = workflow.resolve_inputs({"s": "", "i": 0, "b": False, "n": 0.0, "o": {}, "a": []})
    assert resolved["s"] == ""
    assert resolved["i"] == 0
    assert resolved["n"] == 0.0
    assert resolved["o"] == {}
    assert resolved["a"] == []


def test_required_input_missing(workflow: Workflow) -> None:
    assert input_problems(workflow, {}) == {"inputs.s": "required string input is missing"}


def test_required_input_given_as_none(workflow: Workflow) -> None:
    assert "inputs.s" in input_problems(workflow, {"s": None})


def test_unknown_input_lists_the_declared_ones(workflow: Workflow) -> None:
    problems = input_problems(workflow, {"s": "x", "zz": 1})
    assert problems == {"inputs.zz": "unknown input (declared inputs: a, b, e, i, n, o, s)"}


def test_unknown_input_when_none_are_declared() -> None:
    bare = load_definition(minimal())
    assert input_problems(bare, {"q": 1}) == {"inputs.q": "unknown input (declared inputs: none)"}


def test_enum_violation(workflow: Workflow) -> None:
    problems = input_problems(workflow, {"s": "x", "e": "green"})
    assert problems == {"inputs.e": "'green' is not one of ['red', 'blue']"}


def test_enum_value_accepted(workflow: Workflow) -> None:
    assert workflow.resolve_inputs({"s": "x", "e": "blue"})["e"] == "blue"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s", " hi ", " hi "),
        ("i", "42", 42),
        ("i", " -3 ", -3),
        ("n", "1.5", 1.5),
        ("n", "3", 3),
        ("n", "1e3", 1000.0),
        ("b", "true", True),
        ("b", "TRUE", True),
        ("b", "yes", True),
        ("b", "on", True),
        ("b", "1", True),
        ("b", "false", False),
        ("b", "No", False),
        ("b", "no", False),
        ("b", "off", False),
        ("b", "0", False),
        ("o", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("a", "[1, 2]", [1, 2]),
        ("a", " [] ", []),
        ("e", "red", "red"),
    ],
)
def test_from_text_parses_by_declared_type(workflow: Workflow, name: str, text: str, expected: Any) -> None:
    given = {"s": "x", name: text}
    value = workflow.resolve_inputs(given, from_text=True)[name]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("i", "x", "expected integer, got 'x'"),
        ("i", "1.5", "expected integer, got '1.5'"),
        ("n", "abc", "expected number, got 'abc'"),
        ("b", "maybe", "expected boolean, got 'maybe'"),
        ("o", "[1]", "expected object, got list [1]"),
        (
            "o",
            "{oops",
            "the object input is not valid JSON: Expecting property name enclosed in double quotes (line 1 column 2)",
        ),
        (
            "a",
            "{",
            "the array input is not valid JSON: Expecting property name enclosed in double quotes (line 1 column 2)",
        ),
        ("a", '{"k": 1}', "expected array, got dict {'k': 1}"),
        ("e", "green", "'green' is not one of ['red', 'blue']"),
    ],
)
def test_from_text_bad_text(workflow: Workflow, name: str, text: str, message: str) -> None:
    assert input_problems(workflow, {"s": "x", name: text}, from_text=True) == {f"inputs.{name}": message}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("s", 5, "expected string, got int 5"),
        ("i", True, "expected integer, got bool True"),
        ("i", 3.0, "expected integer, got float 3.0"),
        ("i", "3", "expected integer, got str '3'"),
        ("n", "1", "expected number, got str '1'"),
        ("n", False, "expected number, got bool False"),
        ("b", 1, "expected boolean, got int 1"),
        ("b", "true", "expected boolean, got str 'true'"),
        ("o", [], "expected object, got list []"),
        ("a", {}, "expected array, got dict {}"),
    ],
)
def test_type_checks_without_from_text(workflow: Workflow, name: str, value: Any, message: str) -> None:
    given = {"s": "x", name: value} if name != "s" else {"s": value}
    assert input_problems(workflow, given) == {f"inputs.{name}": message}


def test_numbers_accept_int_and_float(workflow: Workflow) -> None:
    assert workflow.resolve_inputs({"s": "x", "n": 2})["n"] == 2
    assert workflow.resolve_inputs({"s": "x", "n": 2.5})["n"] == 2.5


def test_input_error_lists_all_problems(workflow: Workflow) -> None:
    with pytest.raises(InputError) as info:
        workflow.resolve_inputs({"zz": 1, "i": "x", "b": "maybe", "e": "green"}, from_text=True)
    error = info.value
    assert isinstance(error, DefinitionError)
    fields = {p.field for p in error.problems}
    assert fields == {"inputs.zz", "inputs.s", "inputs.i", "inputs.b", "inputs.e"}
    text = str(error)
    assert text.startswith("inputs of workflow 'wf': 5 problem(s)")
    for field in fields:
        assert f"  - {field}: " in text


def test_bad_default_never_reaches_a_run() -> None:
    # A default that contradicts its own declared type or enum is a definition mistake; it must
    # be reported (when loading, or when resolving inputs), not handed to the run as-is.
    raw = minimal(inputs={"i": {"type": "integer", "default": "abc"}})
    with pytest.raises(DefinitionError):  # InputError is a DefinitionError too
        load_definition(raw).resolve_inputs({})
    raw = minimal(inputs={"e": {"type": "string", "enum": ["a", "b"], "default": "c"}})
    with pytest.raises(DefinitionError):
        load_definition(raw).resolve_inputs({})


def test_resolved_default_is_not_shared_with_the_definition() -> None:
    workflow = load_definition(minimal(inputs={"d": {"type": "object", "default": {"a": 1}}}))
    first = workflow.resolve_inputs({})
    first["d"]["a"] = 2  # one run changing its own inputs...
    # ...must not change the definition or the next run's inputs.
    assert workflow.inputs["d"].default == {"a": 1}
    assert workflow.resolve_inputs({}) == {"d": {"a": 1}}


# --- round trip -------------------------------------------------------------------------------


def test_to_dict_round_trips() -> None:
    raw = {
        "name": "full",
        "description": "everything",
        "inputs": {"repo": {"type": "string", "required": True}, "n": {"type": "integer", "default": 2}},
        "schedule": {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "inputs": {"repo": "acme/api"}},
        "permissions": {"run": ["U123"], "approve": ["U456"]},
        "notify": {"channel": "#ops"},
        "on_failure": "notify-oncall",
        "tags": ["triage"],
        "nodes": [
            {
                "id": "fetch",
                "type": "http.request",
                "version": 1,
                "credential": "github-default",
                "params": {"url": "https://x/{{ inputs.repo }}"},
                "retries": 3,
                "retry_delay": {"exponential": 2, "max": 60, "jitter": 0.2},
                "timeout": 30,
                "cache": {"ttl": 3600},
            },
            {"id": "check", "type": "core.if", "params": {"condition": "{{ true }}"}},
            {
                "id": "each",
                "type": "core.set",
                "needs": ["check:true"],
                "for_each": "{{ nodes.fetch.output.json }}",
                "concurrency": 4,
                "on_error": "continue",
                "retry_delay": [1, 5],
                "params": {"values": {"x": "{{ item }}"}},
            },
        ],
    }
    workflow = load_definition(raw)
    data = workflow.to_dict()
    assert data["nodes"][0]["version"] == 1  # the alias, as written by users
    assert "type_version" not in data["nodes"][0]
    again = load_definition(data)
    assert again == workflow
    assert again.to_dict() == data
    # Plain data: survives JSON and YAML text too.
    assert load_definition(json.loads(json.dumps(data))) == workflow
    assert load_definition(yaml.safe_dump(data)) == workflow


def test_to_dict_leaves_out_defaults() -> None:
    data = load_definition(minimal()).to_dict()
    assert data == {"name": "wf", "nodes": [{"id": "a", "type": "core.set", "params": {"values": {}}}]}


def test_problem_str_and_dict() -> None:
    problem = Problem("bad", node="n", field="params.x")
    assert str(problem) == "node 'n': params.x: bad"
    assert problem.to_dict() == {"node": "n", "field": "params.x", "message": "bad"}
    assert str(Problem("bad")) == "bad"
    assert str(Problem("bad", field="name")) == "name: bad"
