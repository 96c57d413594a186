"""Planning: topological order, edges, and every validation problem reported at once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

import nodes  # noqa: F401 - registers the built-in node types
from flows.model import DefinitionError, Problem
from flows.plan import Edge, Plan, build_plan
from nodes.context import NodeContext
from nodes.registry import REGISTRY, Registry, node


def wf(*node_defs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "wf", "nodes": list(node_defs), **extra}


def set_node(node_id: str, values: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "core.set", "params": {"values": {} if values is None else values}, **extra}


class CredParams(BaseModel):
    repo: str


def problems_of(raw: Any, **kwargs: Any) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        build_plan(raw, **kwargs)
    return info.value.problems


def only_problem(raw: Any) -> Problem:
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    return problems[0]


def assert_topological(plan: Plan) -> None:
    position = {node_id: i for i, node_id in enumerate(plan.order)}
    assert sorted(position) == sorted(plan.nodes)
    for planned in plan.nodes.values():
        for source in planned.upstream:
            assert position[source] < position[planned.id], (source, planned.id)


# --- order and edges ---------------------------------------------------------------------------


def test_nodes_come_out_in_topological_order() -> None:
    plan = build_plan(
        wf(
            set_node("c", {"x": "{{ nodes.b.output }}"}),
            set_node("b", needs=["a"]),
            set_node("a"),
        )
    )
    assert plan.order == ["a", "b", "c"]
    assert list(plan.nodes) == plan.order
    assert_topological(plan)


def test_explicit_and_implicit_edges() -> None:
    plan = build_plan(
        wf(
            set_node("a"),
            set_node("b", needs=["a"]),
            set_node("c", {"x": "{{ nodes.a.output }}", "y": "{{ nodes['b'].status }}"}),
        )
    )
    assert plan.nodes["b"].edges == [Edge("a", None, explicit=True)]
    assert plan.nodes["c"].edges == [Edge("a", None, explicit=False), Edge("b", None, explicit=False)]
    assert plan.nodes["c"].upstream == ["a", "b"]
    assert plan.downstream == {"a": ["b", "c"], "b": ["c"], "c": []}


def test_references_in_for_each_and_cache_key_are_edges() -> None:
    plan = build_plan(
        wf(
            set_node("a"),
            set_node("b"),
            set_node("c", for_each="{{ nodes.a.output.items }}", cache={"key": "{{ nodes.b.status }}"}),
        )
    )
    assert {e.source for e in plan.nodes["c"].edges} == {"a", "b"}
    assert plan.order[-1] == "c"


def test_an_explicit_need_and_a_reference_make_one_edge() -> None:
    plan = build_plan(wf(set_node("a"), set_node("b", {"x": "{{ nodes.a.output }}"}, needs=["a", "a"])))
    assert plan.nodes["b"].edges == [Edge("a", None, explicit=True)]


def test_branch_ports_on_edges() -> None:
    plan = build_plan(
        wf(
            {"id": "check", "type": "core.if", "params": {"condition": "{{ inputs.go }}"}},
            set_node("yes", needs=["check:true"]),
            set_node("no", needs=["check:false"]),
            {"id": "join", "type": "core.merge", "needs": ["yes", "no"], "params": {"mode": "any"}},
            inputs={"go": {"type": "boolean"}},
        )
    )
    assert plan.nodes["yes"].edges == [Edge("check", "true", explicit=True)]
    assert plan.nodes["no"].edges == [Edge("check", "false", explicit=True)]
    assert plan.order[0] == "check"
    assert plan.order[-1] == "join"


def test_switch_ports_are_the_cases_as_text_plus_default() -> None:
    plan = build_plan(
        wf(
            {"id": "sw", "type": "core.switch", "params": {"value": 1, "cases": ["a", 1, True]}},
            set_node("x", needs=["sw:a", "sw:1", "sw:True", "sw:default"]),
        )
    )
    assert [e.port for e in plan.nodes["x"].edges] == ["a", "1", "True", "default"]


def test_switch_with_templated_cases_accepts_any_port() -> None:
    # The ports are only known at run time, so the planner cannot refuse one.
    plan = build_plan(
        wf(
            {"id": "sw", "type": "core.switch", "params": {"value": 1, "cases": "{{ inputs.cases }}"}},
            set_node("x", needs=["sw:whatever"]),
            inputs={"cases": {"type": "array"}},
        )
    )
    assert plan.nodes["x"].edges == [Edge("sw", "whatever", explicit=True)]


def test_planned_node_carries_spec_and_compiled_templates() -> None:
    plan = build_plan(
        wf(
            set_node("a", {"n": "{{ inputs.n }}"}, for_each=[1, 2]),
            inputs={"n": {"type": "integer"}},
        )
    )
    planned = plan.nodes["a"]
    assert planned.id == "a"
    assert planned.spec.type == "core.set"
    assert planned.params.templated is True
    assert planned.params.inputs == frozenset({"n"})
    assert planned.for_each is not None
    assert planned.for_each.templated is False
    assert planned.cache_key is None


def test_build_plan_accepts_yaml_text() -> None:
    plan = build_plan("name: text\nnodes:\n  - {id: a, type: core.wait, params: {seconds: 0}}\n")
    assert plan.order == ["a"]
    assert plan.workflow.name == "text"


# --- problems: ids, types, versions, params ---------------------------------------------------


def test_duplicate_ids() -> None:
    problem = only_problem(wf(set_node("a"), set_node("a")))
    assert (problem.node, problem.field) == ("a", "id")
    assert problem.message == "duplicate node id"


def test_unknown_type_suggests_a_close_match() -> None:
    problem = only_problem(wf({"id": "a", "type": "core.sett", "params": {"values": {}}}))
    assert (problem.node, problem.field) == ("a", "type")
    assert "unknown node type 'core.sett'" in problem.message
    assert "did you mean 'core.set'" in problem.message


def test_unknown_type_without_a_close_match() -> None:
    problem = only_problem(wf({"id": "a", "type": "zzz.qqq"}))
    assert (problem.node, problem.field) == ("a", "type")
    assert "unknown node type 'zzz.qqq'" in problem.message
    assert "did you mean" not in problem.message


def test_unknown_version_lists_the_known_ones() -> None:
    problem = only_problem(wf(set_node("a", version=9)))
    assert (problem.node, problem.field) == ("a", "type")
    assert "has no version 9" in problem.message
    assert "known: [1]" in problem.message


def test_literal_params_are_validated() -> None:
    problems = problems_of(wf({"id": "a", "type": "core.wait", "params": {"seconds": "abc", "extra": 1}}))
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"params.seconds", "params.extra"}
    assert all(p.node == "a" for p in problems)
    assert "valid number" in by_field["params.seconds"].message
    assert "Extra inputs are not permitted" in by_field["params.extra"].message


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "params.seconds", "Field required"),
        ({"seconds": -1}, "params.seconds", "greater than or equal to 0"),
        ({"seconds": 100_000}, "params.seconds", "less than or equal to 86400"),
    ],
)
def test_literal_param_constraints(params: dict[str, Any], field: str, fragment: str) -> None:
    problem = only_problem(wf({"id": "w", "type": "core.wait", "params": params}))
    assert (problem.node, problem.field) == ("w", field)
    assert fragment in problem.message


def test_templated_params_are_validated_after_rendering_not_before() -> None:
    plan = build_plan(
        wf(
            {"id": "w", "type": "core.wait", "params": {"seconds": "{{ inputs.n }}"}},
            inputs={"n": {"type": "number"}},
        )
    )
    assert plan.order == ["w"]


def test_templated_param_does_not_hide_a_literal_mistake_next_to_it() -> None:
    problem = only_problem(
        wf(
            {"id": "w", "type": "core.wait", "params": {"seconds": "{{ inputs.n }}", "extra": 1}},
            inputs={"n": {"type": "number"}},
        )
    )
    assert (problem.node, problem.field) == ("w", "params.extra")


def test_nested_templated_param_is_not_validated_before_rendering() -> None:
    # `values` must be a mapping; a mapping holding templates is fine as it is.
    plan = build_plan(wf(set_node("a", {"x": "{{ inputs.n }}"}), inputs={"n": {"type": "integer"}}))
    assert plan.order == ["a"]


def test_missing_credential_name() -> None:
    registry = Registry()
    registry.add(REGISTRY.get("core.set"))

    @node("test.needs_cred", credential="github", registry=registry)
    async def needs_cred(ctx: NodeContext, params: CredParams) -> dict[str, Any]:
        """A node that needs a GitHub credential."""
        return {}

    raw = wf({"id": "g", "type": "test.needs_cred", "params": {"repo": "a/b"}})
    (problem,) = problems_of(raw, registry=registry)
    assert (problem.node, problem.field) == ("g", "credential")
    assert "github" in problem.message
    raw["nodes"][0]["credential"] = "github-default"
    assert build_plan(raw, registry=registry).order == ["g"]


# --- problems: needs and ports -----------------------------------------------------------------


def test_unknown_needs_target_with_suggestion() -> None:
    problem = only_problem(wf(set_node("fetch"), set_node("b", needs=["fetc"])))
    assert (problem.node, problem.field) == ("b", "needs[0]")
    assert problem.message == "unknown node 'fetc' (did you mean 'fetch'?)"


def test_unknown_needs_target_without_suggestion() -> None:
    problem = only_problem(wf(set_node("a"), set_node("b", needs=["a", "zzz"])))
    assert (problem.node, problem.field) == ("b", "needs[1]")
    assert problem.message == "unknown node 'zzz'"


def test_self_dependency() -> None:
    problem = only_problem(wf(set_node("a", needs=["a"])))
    assert (problem.node, problem.field) == ("a", "needs[0]")
    assert "cannot depend on itself" in problem.message


def test_self_dependency_through_a_port() -> None:
    problem = only_problem(wf({"id": "c", "type": "core.if", "params": {"condition": True}, "needs": ["c:true"]}))
    assert (problem.node, problem.field) == ("c", "needs[0]")
    assert "cannot depend on itself" in problem.message


def test_unknown_port_on_if() -> None:
    problem = only_problem(
        wf({"id": "check", "type": "core.if", "params": {"condition": True}}, set_node("x", needs=["check:maybe"]))
    )
    assert (problem.node, problem.field) == ("x", "needs[0]")
    assert problem.message == "node 'check' has no port 'maybe' (ports: true, false)"


def test_port_on_a_node_without_ports() -> None:
    problem = only_problem(wf(set_node("s"), set_node("x", needs=["s:true"])))
    assert (problem.node, problem.field) == ("x", "needs[0]")
    assert problem.message == "node 's' (core.set) has no ports"


def test_unknown_port_on_switch_lists_cases_and_default() -> None:
    problem = only_problem(
        wf(
            {"id": "sw", "type": "core.switch", "params": {"value": 1, "cases": ["a", 1]}},
            set_node("x", needs=["sw:a", "sw:b"]),
        )
    )
    assert (problem.node, problem.field) == ("x", "needs[1]")
    assert problem.message == "node 'sw' has no port 'b' (ports: a, 1, default)"


# --- problems: templates ---------------------------------------------------------------------


def test_template_syntax_error_names_the_field_path() -> None:
    problem = only_problem(wf({"id": "t", "type": "text.template", "params": {"template": "{{ oops( }}"}}))
    assert (problem.node, problem.field) == ("t", "params.template")
    assert "syntax" in problem.message
    assert "{{ oops( }}" in problem.message


def test_template_syntax_error_deep_in_params() -> None:
    problem = only_problem(wf(set_node("t", {"list": ["ok", {"deep": "{% if %}"}]})))
    assert (problem.node, problem.field) == ("t", "params.values.list[1].deep")
    assert "syntax" in problem.message


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"for_each": "{{ oops( }}"}, "for_each"),
        ({"cache": {"key": "{{ oops( }}"}}, "cache.key"),
    ],
)
def test_template_syntax_error_in_other_fields(extra: dict[str, Any], field: str) -> None:
    problem = only_problem(wf(set_node("t", **extra)))
    assert (problem.node, problem.field) == ("t", field)
    assert "syntax" in problem.message


def test_unsafe_template_is_a_problem_on_its_field() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ inputs.__class__ }}"})))
    assert (problem.node, problem.field) == ("t", "params.values.x")
    assert "'__class__' is not allowed" in problem.message


def test_dynamic_node_reference_is_a_problem() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ nodes[inputs.k] }}"}), inputs={"k": {"type": "string"}}))
    assert (problem.node, problem.field) == ("t", "params.values.x")
    assert "literal node id" in problem.message


def test_reference_to_an_unknown_node_with_suggestion() -> None:
    problem = only_problem(wf(set_node("fetch"), set_node("t", {"x": "{{ nodes.fetc.output }}"})))
    assert (problem.node, problem.field) == ("t", "params")
    assert problem.message == "references unknown node 'fetc' (did you mean 'fetch'?)"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"for_each": "{{ nodes.zz.output }}"}, "for_each"),
        ({"cache": {"key": "{{ nodes.zz.output }}"}}, "cache.key"),
    ],
)
def test_reference_to_an_unknown_node_in_other_fields(extra: dict[str, Any], field: str) -> None:
    problem = only_problem(wf(set_node("t", **extra)))
    assert (problem.node, problem.field) == ("t", field)
    assert problem.message == "references unknown node 'zz'"


def test_reference_to_own_output() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ nodes.t.output }}"})))
    assert (problem.node, problem.field) == ("t", "params")
    assert "cannot reference its own output" in problem.message


def test_reference_to_own_output_in_for_each() -> None:
    problem = only_problem(wf(set_node("t", for_each="{{ nodes.t.output }}")))
    assert (problem.node, problem.field) == ("t", "for_each")
    assert "cannot reference its own output" in problem.message


def test_undeclared_input() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ inputs.nope }}"}), inputs={"repo": {"type": "string"}}))
    assert (problem.node, problem.field) == ("t", "params")
    assert problem.message == "uses undeclared input 'nope' (declared: repo)"


def test_undeclared_input_when_none_declared() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ inputs.nope }}"})))
    assert problem.message == "uses undeclared input 'nope' (declared: none)"


def test_undeclared_input_read_with_a_literal_key() -> None:
    problem = only_problem(wf(set_node("t", {"x": "{{ inputs['nope'] }}"})))
    assert (problem.node, problem.field) == ("t", "params")
    assert "undeclared input 'nope'" in problem.message


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"for_each": "{{ inputs.nope }}"}, "for_each"),
        ({"cache": {"key": "{{ inputs.nope }}"}}, "cache.key"),
    ],
)
def test_undeclared_input_in_other_fields(extra: dict[str, Any], field: str) -> None:
    problem = only_problem(wf(set_node("t", **extra)))
    assert (problem.node, problem.field) == ("t", field)
    assert "undeclared input 'nope'" in problem.message


@pytest.mark.parametrize("template", ["{{ item }}", "{{ index }}", "{{ item.body }} #{{ index }}"])
def test_item_without_for_each(template: str) -> None:
    problem = only_problem(wf(set_node("t", {"x": template})))
    assert (problem.node, problem.field) == ("t", "params")
    assert "no `for_each`" in problem.message


def test_item_in_cache_key_without_for_each_names_the_cache_key() -> None:
    problem = only_problem(wf(set_node("t", cache={"key": "{{ item }}"})))
    assert (problem.node, problem.field) == ("t", "cache.key")
    assert "no `for_each`" in problem.message


def test_item_and_index_with_for_each_are_fine() -> None:
    plan = build_plan(
        wf(
            set_node("t", {"i": "{{ item }}", "n": "{{ index }}"}, for_each="{{ inputs.xs }}", concurrency=2),
            inputs={"xs": {"type": "array"}},
        )
    )
    assert plan.order == ["t"]


@pytest.mark.parametrize("for_each", [{"a": 1}, "plain text", 3])
def test_for_each_literal_that_is_not_a_list(for_each: Any) -> None:
    problem = only_problem(wf(set_node("t", for_each=for_each)))
    assert (problem.node, problem.field) == ("t", "for_each")
    assert "must be a list" in problem.message


def test_for_each_literal_list_is_fine() -> None:
    assert build_plan(wf(set_node("t", {"x": "{{ item }}"}, for_each=[1, 2, 3]))).order == ["t"]


# --- cycles --------------------------------------------------------------------------------------


def assert_cycle_message(message: str, members: set[str]) -> list[str]:
    assert message.startswith("cycle: ")
    path = message.removeprefix("cycle: ").split(" -> ")
    assert path[0] == path[-1]
    assert len(path[:-1]) == len(set(path[:-1])), "each node once around the loop"
    assert set(path) == members
    return path


def test_cycle_is_named() -> None:
    problem = only_problem(
        wf(
            set_node("a", needs=["c"]),
            set_node("b", {"x": "{{ nodes.a.output }}"}),
            set_node("c", needs=["b"]),
            set_node("d", needs=["a"]),  # downstream of the cycle, not part of it
        )
    )
    assert problem.field == "needs"
    assert problem.node in {"a", "b", "c"}
    path = assert_cycle_message(problem.message, {"a", "b", "c"})
    # The message follows the direction work flows: a feeds b feeds c feeds a.
    start = path.index("a")
    loop = path[:-1]
    assert [*loop[start:], *loop[:start]] == ["a", "b", "c"]


def test_two_node_cycle() -> None:
    problem = only_problem(wf(set_node("a", needs=["b"]), set_node("b", needs=["a"])))
    assert_cycle_message(problem.message, {"a", "b"})


def test_separate_cycles_are_each_reported() -> None:
    problems = problems_of(
        wf(
            set_node("a", needs=["b"]),
            set_node("b", needs=["a"]),
            set_node("x", needs=["y"]),
            set_node("y", needs=["x"]),
            set_node("ok"),
        )
    )
    members = sorted(frozenset(p.message.removeprefix("cycle: ").split(" -> ")) for p in problems)
    assert members == [frozenset({"a", "b"}), frozenset({"x", "y"})]


def test_large_cycle_is_reported_once() -> None:
    size = 2000
    raw = wf(*(set_node(f"n{i}", needs=[f"n{(i - 1) % size}"]) for i in range(size)))
    problem = only_problem(raw)
    path = assert_cycle_message(problem.message, {f"n{i}" for i in range(size)})
    assert len(path) == size + 1


# --- many problems at once --------------------------------------------------------------------


def test_many_problems_are_reported_together() -> None:
    raw = wf(
        set_node("dup"),
        set_node("dup"),
        {"id": "typo", "type": "core.sett"},
        {"id": "wait", "type": "core.wait", "params": {"seconds": "abc"}},
        set_node("lonely", needs=["ghost"]),
        set_node("tmpl", {"x": "{{ inputs.undeclared }}"}),
        set_node("p", needs=["q"]),
        set_node("q", needs=["p"]),
    )
    with pytest.raises(DefinitionError) as info:
        build_plan(raw)
    problems = info.value.problems
    assert len(problems) >= 5
    located = {(p.node, p.field) for p in problems}
    assert {
        ("dup", "id"),
        ("typo", "type"),
        ("wait", "params.seconds"),
        ("lonely", "needs[0]"),
        ("tmpl", "params"),
    } <= located
    assert any(p.message.startswith("cycle: ") for p in problems)
    text = str(info.value)
    assert text.startswith(f"workflow 'wf': {len(problems)} problem(s)")
    assert text.count("\n  - ") == len(problems)


def test_structural_errors_come_from_the_model() -> None:
    with pytest.raises(DefinitionError) as info:
        build_plan(wf({"id": "a-b", "type": "core.set"}))
    (problem,) = info.value.problems
    assert (problem.node, problem.field) == ("a-b", "id")


# --- scale -------------------------------------------------------------------------------------


def test_long_linear_chain() -> None:
    size = 2000
    raw = wf(
        set_node("n0", {"v": 0}),
        *(set_node(f"n{i}", {"v": f"{{{{ nodes.n{i - 1}.output.v + 1 }}}}"}) for i in range(1, size)),
    )
    plan = build_plan(raw)
    assert plan.order == [f"n{i}" for i in range(size)]
    assert plan.nodes[f"n{size - 1}"].edges == [Edge(f"n{size - 2}", None, explicit=False)]
    assert_topological(plan)


def test_wide_fan_out_and_join() -> None:
    width = 1998
    leaves = [f"leaf{i}" for i in range(width)]
    raw = wf(
        set_node("root"),
        *(set_node(leaf, needs=["root"]) for leaf in leaves),
        {"id": "join", "type": "core.merge", "needs": leaves},
    )
    plan = build_plan(raw)
    assert len(plan.order) == width + 2
    assert plan.order[0] == "root"
    assert plan.order[-1] == "join"
    assert plan.downstream["root"] == leaves
    assert plan.nodes["join"].upstream == leaves
    assert_topological(plan)
