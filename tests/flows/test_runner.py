"""Runner semantics on a real Prefect server: branches, skips, retries, timeouts, cache, resume."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

import switchboard
from flows.events import NodeEvent
from flows.results import RunResult
from tests.fakes.http import FakeHTTP, Reply
from tests.helpers.polling import apoll_until

pytestmark = pytest.mark.usefixtures("prefect_server")

_probe_state = {"active": 0, "max": 0}


@switchboard.node("test.probe")
async def probe(ctx: switchboard.NodeContext, value: Any, sleep: float = 0.0) -> dict[str, Any]:
    """Echo a value after sleeping; tracks how many probes run at once (test only)."""
    _probe_state["active"] += 1
    _probe_state["max"] = max(_probe_state["max"], _probe_state["active"])
    try:
        await asyncio.sleep(sleep)
        return {"value": value, "attempt": ctx.attempt}
    finally:
        _probe_state["active"] -= 1


async def run(definition: dict[str, Any], inputs: dict[str, Any] | None = None, **options: Any) -> RunResult:
    return await switchboard.arun(definition, inputs, allow_hosts="127.0.0.1", **options)


def wf(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "test", "nodes": list(nodes), **extra}


def http_get(node_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "http.request", "params": {"url": url}, **extra}


async def task_runs_of(flow_run_id: str, at_least: int = 1) -> list[Any]:
    """The flow run's task runs once ``at_least`` of them are final (rows are written
    asynchronously from events)."""

    async def final_runs() -> list[Any] | None:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = len(runs) >= at_least and all(r.state is not None and r.state.is_final() for r in runs)
        return runs if done else None

    return await apoll_until(final_runs, message=f"{at_least} final task runs of flow run {flow_run_id}")


async def test_branching_skips_the_path_not_taken_and_merge_any_joins() -> None:
    definition = wf(
        {"id": "check", "type": "core.if", "params": {"condition": "{{ inputs.n > 3 }}"}},
        {"id": "big", "type": "text.template", "needs": ["check:true"], "params": {"template": "big"}},
        {"id": "small", "type": "text.template", "needs": ["check:false"], "params": {"template": "small"}},
        {"id": "after_small", "type": "core.set", "params": {"values": {"v": "{{ nodes.small.output.text }}"}}},
        {"id": "join", "type": "core.merge", "needs": ["big", "small"], "params": {"mode": "any"}},
        {"id": "strict", "type": "core.merge", "needs": ["big", "small"], "params": {"mode": "all"}},
        inputs={"n": {"type": "integer", "required": True}},
    )
    result = await run(definition, {"n": 5})
    assert result.status == "completed"
    nodes = result.nodes
    assert nodes["check"].output == {"result": True}
    assert nodes["big"].output == {"text": "big"}
    assert (nodes["small"].status, nodes["small"].output) == ("skipped", None)
    assert nodes["after_small"].status == "skipped", "skips propagate through references"
    assert nodes["join"].output == {"big": {"text": "big"}}
    assert nodes["strict"].status == "skipped", "merge all needs every upstream"

    other = await run(definition, {"n": 1})
    assert other.nodes["big"].status == "skipped"
    assert other.nodes["after_small"].output == {"v": "small"}
    assert other.nodes["join"].output == {"small": {"text": "small"}}


async def test_switch_routes_to_the_matching_case_or_default() -> None:
    definition = wf(
        {"id": "route", "type": "core.switch", "params": {"value": "{{ inputs.kind }}", "cases": ["bug", 2]}},
        {"id": "on_bug", "type": "core.set", "needs": ["route:bug"], "params": {"values": {"x": 1}}},
        {"id": "on_two", "type": "core.set", "needs": ["route:2"], "params": {"values": {"x": 2}}},
        {"id": "other", "type": "core.set", "needs": ["route:default"], "params": {"values": {"x": 0}}},
        inputs={"kind": {"type": "string"}},
    )
    statuses = {}
    for kind in ("bug", "2", "feature"):
        result = await run(definition, {"kind": kind})
        statuses[kind] = [n for n in ("on_bug", "on_two", "other") if result.nodes[n].status == "completed"]
    assert statuses == {"bug": ["on_bug"], "2": ["on_two"], "feature": ["other"]}


async def test_every_node_is_a_named_prefect_task_run_and_the_flow_run_is_named_and_tagged() -> None:
    events: list[NodeEvent] = []
    definition = wf(
        {"id": "first", "type": "core.set", "params": {"values": {"a": 1}}},
        {"id": "second", "type": "text.template", "params": {"template": "{{ nodes.first.output.a }}"}},
        {"id": "each", "type": "test.probe", "for_each": [1, 2, 3], "params": {"value": "{{ item }}"}},
    )
    result = await switchboard.arun(definition, trigger="cli", version=4, listeners=[events.append])
    assert result.status == "completed" and result.flow_run_id
    runs = await task_runs_of(result.flow_run_id, at_least=5)
    assert sorted(r.name for r in runs) == ["each[0]", "each[1]", "each[2]", "first", "second"]
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    by_name = {r.name: r for r in runs}
    # the workflow's edges are the Prefect task graph's edges
    parents = {i.id for i in by_name["second"].task_inputs.get("upstream", [])}
    assert parents == {by_name["first"].id}
    async with get_client() as client:
        flow_run = await client.read_flow_run(result.flow_run_id)
        artifacts = await client.read_artifacts()
    assert flow_run.name == "test v4 · cli"
    assert {"workflow:test", "version:4", "trigger:cli", f"switchboard-run:{result.run_id}"} <= set(flow_run.tags)
    table = next(a for a in artifacts if a.flow_run_id == flow_run.id)
    assert "| second | completed | 1 |" in str(table.data)
    finished = [e.node_id for e in events if e.kind == "finished"]
    assert sorted(finished) == ["each", "first", "second"]
    assert [e.label for e in events if e.kind == "started" and e.node_id == "each"] != []


async def test_for_each_keeps_item_order_and_respects_concurrency() -> None:
    _probe_state.update(active=0, max=0)
    definition = wf(
        {
            "id": "fan",
            "type": "test.probe",
            "for_each": "{{ inputs.items }}",
            "concurrency": 2,
            # later items finish first: the output must still be in item order
            "params": {"value": "{{ index }}:{{ item }}", "sleep": "{{ 0.3 - index * 0.05 }}"},
        },
        inputs={"items": {"type": "array"}},
    )
    result = await run(definition, {"items": ["a", "b", "c", "d", "e", "f"]})
    assert result.status == "completed"
    assert [o["value"] for o in result.nodes["fan"].output] == ["0:a", "1:b", "2:c", "3:d", "4:e", "5:f"]
    assert _probe_state["max"] == 2


async def test_transient_errors_are_retried_until_success(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/flaky", Reply(503, "busy"), Reply(429, "slow down"), Reply(200, {"ok": True}))
    result = await run(wf(http_get("call", fake_http.url("/flaky"), retries=3, retry_delay=[0, 0, 0])))
    node = result.nodes["call"]
    assert (result.status, node.status, node.attempts) == ("completed", "completed", 3)
    assert node.output["json"] == {"ok": True}
    assert len(fake_http.calls("/flaky")) == 3


async def test_permanent_errors_fail_at_once_with_the_provider_message(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/missing", Reply(404, {"message": "Not Found: issue 7"}))
    result = await run(wf(http_get("call", fake_http.url("/missing"), retries=3, retry_delay=0)))
    node = result.nodes["call"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert "404" in (node.error or "") and "Not Found: issue 7" in (node.error or "")
    assert len(fake_http.calls("/missing")) == 1
    assert result.error == f"node 'call' failed: {node.error}"


async def test_retry_after_is_honoured(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/limited", Reply(429, "wait", {"Retry-After": "1"}), Reply(200, {"ok": 1}))
    result = await run(wf(http_get("call", fake_http.url("/limited"), retries=1, retry_delay=0)))
    assert result.nodes["call"].attempts == 2
    first, second = fake_http.calls("/limited")
    assert second.at - first.at >= 0.95


async def test_exhausted_retries_fail_with_the_last_error(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/down", Reply(502, "bad gateway"))
    result = await run(wf(http_get("call", fake_http.url("/down"), retries=2, retry_delay=0)))
    assert (result.nodes["call"].status, result.nodes["call"].attempts) == ("failed", 3)
    assert "502" in (result.nodes["call"].error or "")


async def test_timeout_fails_the_node_and_counts_as_retryable() -> None:
    result = await run(
        wf(
            {"id": "slow", "type": "core.wait", "timeout": 0.3, "params": {"seconds": 5}},
            {"id": "slow_retried", "type": "core.wait", "timeout": 0.3, "retries": 1, "params": {"seconds": 5}},
        )
    )
    assert result.status == "failed"
    assert (result.nodes["slow"].status, result.nodes["slow"].attempts) == ("failed", 1)
    assert "timeout" in (result.nodes["slow"].error or "").lower()
    assert result.nodes["slow_retried"].attempts == 2


async def test_failure_skips_downstream_but_independent_branches_finish() -> None:
    definition = wf(
        {"id": "boom", "type": "core.fail", "params": {"message": "deliberate"}},
        {"id": "after", "type": "core.set", "needs": ["boom"], "params": {"values": {}}},
        {"id": "after_after", "type": "core.set", "needs": ["after"], "params": {"values": {}}},
        {"id": "independent", "type": "core.set", "params": {"values": {"ok": True}}},
    )
    result = await run(definition)
    assert result.status == "failed"
    assert result.nodes["boom"].error == "deliberate"
    assert result.nodes["after"].status == "skipped"
    assert result.nodes["after"].error == "upstream node 'boom' failed"
    assert result.nodes["after_after"].status == "skipped"
    assert result.nodes["independent"].output == {"ok": True}
    async with get_client() as client:
        flow_run = await client.read_flow_run(result.flow_run_id)  # type: ignore[arg-type]
    assert flow_run.state is not None and flow_run.state.is_failed()


async def test_on_error_continue_records_the_error_and_runs_downstream() -> None:
    definition = wf(
        {"id": "boom", "type": "core.fail", "on_error": "continue", "params": {"message": "nope"}},
        {"id": "after", "type": "core.set", "params": {"values": {"saw": "{{ nodes.boom.output.error }}"}}},
    )
    result = await run(definition)
    assert result.status == "completed"
    assert result.nodes["boom"].status == "failed"
    assert result.nodes["boom"].output == {"error": "nope"}
    assert result.nodes["after"].output == {"saw": "nope"}


async def test_a_template_error_at_run_time_fails_the_node_as_a_failed_task_run(fake_http: FakeHTTP) -> None:
    # b is a pure node (no result store), c one whose cache key is computed from its params
    missing = "{{ nodes.a.output.missing }}"
    definition = wf(
        {"id": "a", "type": "core.set", "params": {"values": {"x": 1}}},
        {"id": "b", "type": "core.set", "retries": 2, "params": {"values": {"y": missing}}},
        http_get("c", fake_http.url("/never") + "?q=" + missing, retries=2, retry_delay=0),
    )
    result = await run(definition)
    for node_id in ("b", "c"):
        node = result.nodes[node_id]
        assert node.status == "failed"
        assert (node.error or "").startswith("params: ") and "missing" in (node.error or "")
        assert node.attempts == 1, "rendered in the node's task, once: a template error is not retried"
    assert fake_http.calls("/never") == []
    assert result.flow_run_id
    runs = {r.name: r for r in await task_runs_of(result.flow_run_id, at_least=3)}
    for node_id in ("b", "c"):
        state = runs[node_id].state
        assert state is not None and state.is_failed()
        assert "missing" in (state.message or "")


async def test_rendering_is_bounded_by_the_node_timeout(fake_http: FakeHTTP) -> None:
    slow = "{% for a in inputs.xs %}{% for b in inputs.xs %}{% endfor %}{% endfor %}"
    definition = wf(
        {"id": "slow", "type": "text.template", "timeout": 0.5, "retries": 2, "params": {"template": slow}},
        # rendered by the cache key function (the node persists its result), not the task body
        http_get("slow_call", fake_http.url("/never") + "?q=" + slow, timeout=0.5, retries=2, retry_delay=0),
        {"id": "fast", "type": "core.set", "params": {"values": {"ok": True}}},
        inputs={"xs": {"type": "array"}},
    )
    result = await run(definition, {"xs": list(range(3000))})
    for node_id in ("slow", "slow_call"):
        node = result.nodes[node_id]
        assert node.status == "failed"
        assert "took longer than 0.45s" in (node.error or ""), "90% of the node's timeout"
        assert node.attempts == 1, "a template that is too slow is not retried"
    assert fake_http.calls("/never") == []
    assert result.nodes["fast"].status == "completed"


async def test_a_template_over_the_size_limit_fails_its_node_and_the_run_goes_on() -> None:
    definition = wf(
        {"id": "wide", "type": "text.template", "params": {"template": "{{ '%999999999d' % 1 }}"}},
        {"id": "fan", "type": "core.set", "for_each": "{{ [[0] * 1000000] * 1000000 }}", "params": {"values": {}}},
        {"id": "fine", "type": "core.set", "params": {"values": {"ok": True}}},
    )
    result = await run(definition)
    assert result.status == "failed"
    assert "1000000 characters or items" in (result.nodes["wide"].error or "")
    assert (result.nodes["fan"].error or "").startswith("for_each: ")
    assert result.nodes["fine"].output == {"ok": True}
    assert result.flow_run_id
    runs = {r.name: r for r in await task_runs_of(result.flow_run_id, at_least=3)}
    assert {"wide", "fan", "fine"} <= runs.keys(), "a for_each that cannot render is a failed task run too"


async def test_the_template_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_TEMPLATE_MAX_SIZE", "1000")
    monkeypatch.setenv("SWITCHBOARD_TEMPLATE_TIMEOUT", "0.2")
    definition = wf(
        {"id": "long", "type": "text.template", "params": {"template": "{{ 'a' * 2000 }}"}},
        {
            "id": "slow",
            "type": "text.template",
            "params": {"template": "{% for a in inputs.xs %}{% for b in inputs.xs %}{% endfor %}{% endfor %}"},
        },
        inputs={"xs": {"type": "array"}},
    )
    result = await run(definition, {"xs": list(range(3000))})
    assert "more than 1000 characters or items" in (result.nodes["long"].error or "")
    assert "took longer than 0.2s" in (result.nodes["slow"].error or "")


async def test_params_invalid_after_rendering_fail_without_retry() -> None:
    definition = wf(
        {"id": "w", "type": "core.wait", "retries": 3, "params": {"seconds": "{{ inputs.s }}"}},
        inputs={"s": {"type": "string"}},
    )
    result = await run(definition, {"s": "soon"})
    assert (result.nodes["w"].status, result.nodes["w"].attempts) == ("failed", 1)
    assert "params.seconds" in (result.nodes["w"].error or "")


async def test_cache_hits_across_runs_and_a_new_key_misses(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/cached", Reply(200, {"n": 1}))
    definition = wf(
        http_get("call", fake_http.url("/cached") + "?q={{ inputs.q }}", cache={"ttl": 600}),
        inputs={"q": {"type": "string"}},
    )
    first = await run(definition, {"q": "one"})
    second = await run(definition, {"q": "one"})
    third = await run(definition, {"q": "two"})
    assert (first.nodes["call"].cached, second.nodes["call"].cached, third.nodes["call"].cached) == (
        False,
        True,
        False,
    )
    assert second.nodes["call"].output == first.nodes["call"].output
    assert len(fake_http.calls("/cached")) == 2


async def test_cache_key_template_controls_reuse(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/keyed", Reply(200, {"n": 1}))
    definition = wf(
        http_get("call", fake_http.url("/keyed") + "?t={{ inputs.t }}", cache={"ttl": 600, "key": "fixed"}),
        inputs={"t": {"type": "string"}},
    )
    await run(definition, {"t": "1"})
    again = await run(definition, {"t": "2"})
    assert again.nodes["call"].cached is True
    assert len(fake_http.calls("/keyed")) == 1


async def test_identical_nodes_without_cache_both_execute(fake_http: FakeHTTP) -> None:
    fake_http.script("POST", "/send", Reply(200, {"sent": True}))
    call = {"type": "http.request", "params": {"method": "POST", "url": fake_http.url("/send"), "json": {"m": 1}}}
    result = await run(wf({"id": "one", **call}, {"id": "two", **call}))
    assert result.status == "completed"
    assert len(fake_http.calls("/send", "POST")) == 2


async def test_resume_reuses_completed_nodes_and_reruns_the_rest(fake_http: FakeHTTP) -> None:
    fake_http.script("POST", "/side-effect", Reply(201, {"created": 1}))
    fake_http.script("GET", "/unstable", Reply(500, "down"), Reply(200, {"fine": True}))
    definition = wf(
        {"id": "create", "type": "http.request", "params": {"method": "POST", "url": fake_http.url("/side-effect")}},
        http_get("fetch", fake_http.url("/unstable"), needs=["create"]),
        {"id": "report", "type": "core.set", "params": {"values": {"ok": "{{ nodes.fetch.output.json.fine }}"}}},
        {"id": "branch", "type": "core.if", "params": {"condition": "{{ false }}"}},
        {"id": "never", "type": "core.set", "needs": ["branch:true"], "params": {"values": {}}},
    )
    failed = await run(definition)
    assert failed.status == "failed"
    assert failed.nodes["report"].status == "skipped"

    resumed = await switchboard.aretry(failed.run_id, allow_hosts="127.0.0.1")
    assert resumed.status == "completed"
    assert resumed.resumed_from == failed.run_id
    assert resumed.run_id != failed.run_id
    assert (resumed.nodes["create"].cached, resumed.nodes["create"].attempts) == (True, 0)
    assert resumed.nodes["create"].output == failed.nodes["create"].output
    assert resumed.nodes["fetch"].cached is False
    assert resumed.nodes["report"].output == {"ok": True}
    assert resumed.nodes["never"].status == "skipped"
    assert (resumed.nodes["branch"].status, resumed.nodes["branch"].cached) == ("completed", False), (
        "pure nodes are recomputed, not read back"
    )
    assert len(fake_http.calls("/side-effect")) == 1, "the completed side effect is not repeated"
    assert len(fake_http.calls("/unstable")) == 2


async def test_retry_refuses_completed_and_unknown_runs() -> None:
    done = await run(wf({"id": "a", "type": "core.set", "params": {"values": {}}}))
    with pytest.raises(switchboard.NotRetryableError, match="completed"):
        await switchboard.aretry(done.run_id)
    with pytest.raises(switchboard.RunNotFoundError):
        await switchboard.aretry("doesnotexist")


async def test_invalid_definitions_and_inputs_raise_before_anything_runs() -> None:
    with pytest.raises(switchboard.DefinitionError) as bad_definition:
        await run(wf({"id": "a", "type": "core.nope", "params": {}}))
    assert "core.nope" in str(bad_definition.value)
    with pytest.raises(switchboard.InputError) as bad_inputs:
        await run(
            wf({"id": "a", "type": "core.set", "params": {"values": {}}}, inputs={"n": {"type": "integer"}}), {"n": "x"}
        )
    assert "inputs.n" in str(bad_inputs.value)


async def test_custom_nodes_from_the_decorator_run_like_builtins() -> None:
    result = await run(
        wf(
            {"id": "p", "type": "test.probe", "params": {"value": {"nested": [1, 2]}}},
            {
                "id": "q",
                "type": "json.query",
                "params": {"data": "{{ nodes.p.output }}", "expression": "value.nested[1]"},
            },
        )
    )
    assert result.nodes["p"].output == {"value": {"nested": [1, 2]}, "attempt": 1}
    assert result.nodes["q"].output == {"result": 2}


async def test_exponential_backoff_with_a_cap_spaces_the_attempts(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/backoff", Reply(503, "a"), Reply(503, "b"), Reply(503, "c"), Reply(200, {"ok": True}))
    node = http_get("call", fake_http.url("/backoff"), retries=3, retry_delay={"exponential": 0.2, "max": 0.3})
    result = await run(wf(node))
    assert (result.nodes["call"].status, result.nodes["call"].attempts) == ("completed", 4)
    at = [call.at for call in fake_http.calls("/backoff")]
    gaps = [later - earlier for earlier, later in itertools.pairwise(at)]
    # delays 0.2, 0.4 capped to 0.3, 0.8 capped to 0.3
    assert gaps[0] >= 0.19 and gaps[1] >= 0.29 and gaps[2] >= 0.29


async def test_the_run_artifact_redacts_secret_looking_values() -> None:
    result = await run(wf({"id": "cfg", "type": "core.set", "params": {"values": {"api_token": "s3cr3t", "n": 1}}}))
    async with get_client() as client:
        artifacts = await client.read_artifacts()
    table = next(a for a in artifacts if str(a.flow_run_id) == result.flow_run_id)
    assert "[redacted]" in str(table.data)
    assert "s3cr3t" not in str(table.data)


async def test_skipped_nodes_show_in_prefect_as_skipped_task_runs() -> None:
    definition = wf(
        {"id": "check", "type": "core.if", "params": {"condition": "{{ inputs.n > 3 }}"}},
        {"id": "big", "type": "text.template", "needs": ["check:true"], "params": {"template": "big"}},
        {"id": "small", "type": "text.template", "needs": ["check:false"], "params": {"template": "small"}},
        {"id": "after_small", "type": "core.set", "params": {"values": {"v": "{{ nodes.small.output.text }}"}}},
        {"id": "boom", "type": "core.fail", "needs": ["big"], "params": {"message": "no"}},
        {"id": "after_boom", "type": "core.set", "needs": ["boom"], "params": {"values": {"v": 1}}},
        inputs={"n": {"type": "integer", "required": True}},
    )
    result = await run(definition, {"n": 5})
    assert result.status == "failed" and result.flow_run_id
    runs = {r.name: r for r in await task_runs_of(result.flow_run_id, at_least=len(result.nodes))}
    assert sorted(runs) == sorted(result.nodes), "every node of the workflow is a task run in Prefect"
    for name in ("small", "after_small", "after_boom"):
        state = runs[name].state
        assert state is not None and (state.type.value, state.name) == ("COMPLETED", "Skipped"), name
    assert "branch" in (runs["small"].state.message or "")
    assert "upstream node 'boom' failed" in (runs["after_boom"].state.message or "")
    # skipped task runs keep the workflow's edges in Prefect's graph
    assert {i.id for i in runs["after_small"].task_inputs.get("upstream", [])} == {runs["small"].id}
    assert runs["boom"].state is not None and runs["boom"].state.is_failed()
