"""``core.workflow``: a run calls stored workflows as children, recorded, nested in Prefect,
checked before they start, bounded in depth and resumed, not repeated, on retry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from typer.testing import CliRunner

import switchboard
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from switchboard.cli import app
from switchboard.errors import SubWorkflowRefusedError
from switchboard.settings import Settings
from tests.fakes.http import FakeHTTP, Reply
from tests.helpers.polling import apoll_until

pytestmark = pytest.mark.usefixtures("prefect_server")


async def task_runs_of(flow_run_id: str, at_least: int) -> list[Any]:
    """The flow run's task runs once ``at_least`` of them are final (rows come from events)."""

    async def final_runs() -> list[Any] | None:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = len(runs) >= at_least and all(r.state is not None and r.state.is_final() for r in runs)
        return runs if done else None

    return await apoll_until(final_runs, message=f"{at_least} final task runs of flow run {flow_run_id}")


SQUARE: dict[str, Any] = {
    "name": "square",
    "inputs": {"n": {"type": "integer", "required": True}},
    "outputs": {"squared": "{{ nodes.sq.output.v }}"},
    "nodes": [{"id": "sq", "type": "core.set", "params": {"values": {"v": "{{ inputs.n * inputs.n }}"}}}],
}


def parent(*nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "caller", "nodes": list(nodes), **extra}


def call(node_id: str, workflow: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "core.workflow", "params": {"workflow": workflow, "inputs": inputs}, **extra}


async def test_a_parent_gets_its_childs_outputs_and_prefect_nests_the_child_under_the_node(engine: Any) -> None:
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    definition = parent(
        call("one", "square", {"n": 3}),
        call("many", "square", {"n": "{{ item }}"}, for_each=[1, 2, 3], concurrency=2),
        outputs={"nine": "{{ nodes.one.output.outputs.squared }}", "all": "{{ nodes.many.output | length }}"},
    )
    result = await switchboard.arun(definition, engine=engine)
    assert result.status == "completed", result.error
    assert result.outputs == {"nine": 9, "all": 3}
    one = result.nodes["one"].output
    assert one["status"] == "completed" and one["outputs"] == {"squared": 9}
    assert [item["outputs"]["squared"] for item in result.nodes["many"].output] == [1, 4, 9]

    records = {r.id: r for r in await RunStore(engine).list(limit=20)}
    child = records[one["run_id"]]
    assert (child.workflow, child.version, child.trigger, child.parent_run_id) == (
        "square",
        1,
        "workflow",
        result.run_id,
    )
    assert child.to_dict()["parent_run_id"] == result.run_id
    assert sum(1 for r in records.values() if r.parent_run_id == result.run_id) == 4

    assert result.flow_run_id is not None and child.flow_run_id is not None
    parent_tasks = {task_run.name: task_run for task_run in await task_runs_of(result.flow_run_id, at_least=4)}
    assert sorted(parent_tasks) == ["many[0]", "many[1]", "many[2]", "one"], "no extra task run holds a subflow"
    async with get_client() as client:
        (child_flow_run,) = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[child.flow_run_id]))
        )
    assert child_flow_run.parent_task_run_id == parent_tasks["one"].id


async def test_bad_inputs_fail_the_node_with_the_childs_problems_and_start_nothing(engine: Any) -> None:
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    result = await switchboard.arun(parent(call("bad", "square", {"n": "many", "extra": 1})), engine=engine)
    assert result.status == "failed"
    error = result.nodes["bad"].error or ""
    assert error.startswith("inputs for workflow 'square' v1: ")
    assert "n" in error and "extra" in error
    assert [r.workflow for r in await RunStore(engine).list(limit=10)] == ["caller"]


async def test_an_unknown_workflow_or_version_is_named(engine: Any) -> None:
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    missing = await switchboard.arun(parent(call("x", "nope", {})), engine=engine)
    assert "nope" in (missing.nodes["x"].error or "")
    versioned = parent({**call("x", "square", {"n": 1}), "params": {"workflow": "square", "version": 7, "inputs": {}}})
    wrong_version = await switchboard.arun(versioned, engine=engine)
    assert wrong_version.status == "failed" and "7" in (wrong_version.nodes["x"].error or "")


async def test_runaway_recursion_stops_at_the_depth_limit_naming_the_chain(engine: Any) -> None:
    recurse = {
        "name": "recurse",
        "inputs": {"target": {"type": "string", "default": "recurse"}},
        "nodes": [call("again", "{{ inputs.target }}", {})],
    }
    await WorkflowStore(engine).apply(recurse, actor="test")
    settings = Settings.from_env().model_copy(update={"max_workflow_depth": 2})
    async with switchboard.Client(settings, engine=engine) as client:
        result = await client.runs.run(recurse)
    assert result.status == "failed"
    records = await RunStore(engine).list(limit=10)
    deepest = min(records, key=lambda r: r.started_at.timestamp() * -1)  # the last one started
    assert deepest.parent_run_id is not None
    errors = " ".join(r.error or "" for r in records)
    assert "sub-workflows nest deeper than 2 levels (recurse → recurse → recurse)" in errors


async def test_a_failed_child_fails_the_node_unless_it_continues(engine: Any) -> None:
    failing = {"name": "fails", "nodes": [{"id": "boom", "type": "core.fail", "params": {"message": "no luck"}}]}
    await WorkflowStore(engine).apply(failing, actor="test")
    stopped = await switchboard.arun(parent(call("c", "fails", {})), engine=engine)
    assert stopped.status == "failed"
    assert "workflow 'fails' v1 (run " in (stopped.nodes["c"].error or "") and "no luck" in (
        stopped.nodes["c"].error or ""
    )

    carried_on = await switchboard.arun(
        parent(
            call("c", "fails", {}, on_error="continue"),
            {"id": "after", "type": "core.set", "params": {"values": {"child": "{{ nodes.c.output.status }}"}}},
        ),
        engine=engine,
    )
    assert carried_on.status == "completed"
    assert carried_on.nodes["c"].output["status"] == "failed" and carried_on.nodes["c"].output["outputs"] == {}
    assert carried_on.nodes["after"].output == {"child": "failed"}


async def test_retrying_the_parent_resumes_the_child_without_repeating_its_side_effects(
    engine: Any, fake_http: FakeHTTP
) -> None:
    fake_http.script("POST", "/side-effect", Reply(201, {"created": 1}))
    fake_http.script("GET", "/unstable", Reply(500, "down"), Reply(200, {"fine": True}))
    child = {
        "name": "effects",
        "outputs": {"fine": "{{ nodes.fetch.output.json.fine }}"},
        "nodes": [
            {
                "id": "create",
                "type": "http.request",
                "params": {"method": "POST", "url": fake_http.url("/side-effect")},
            },
            {"id": "fetch", "type": "http.request", "needs": ["create"], "params": {"url": fake_http.url("/unstable")}},
        ],
    }
    await WorkflowStore(engine).apply(child, actor="test")
    definition = parent(call("c", "effects", {}), outputs={"fine": "{{ nodes.c.output.outputs.fine }}"})
    failed = await switchboard.arun(definition, engine=engine, allow_hosts="127.0.0.1")
    assert failed.status == "failed"

    resumed = await switchboard.aretry(failed.run_id, engine=engine, allow_hosts="127.0.0.1")
    assert resumed.status == "completed", resumed.error
    assert resumed.outputs == {"fine": True}
    assert len(fake_http.calls("/side-effect")) == 1, "the child's completed side effect is not repeated"
    assert len(fake_http.calls("/unstable")) == 2


async def test_cancelling_the_parent_cancels_its_running_child(engine: Any) -> None:
    slow = {"name": "slow-child", "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 120}}]}
    await WorkflowStore(engine).apply(slow, actor="test")
    running = asyncio.create_task(switchboard.arun(parent(call("c", "slow-child", {})), engine=engine))
    store = RunStore(engine)

    async def child_running() -> list[Any] | None:
        return [r for r in await store.list(limit=10) if r.workflow == "slow-child" and r.status == "running"] or None

    (child,) = await apoll_until(child_running, message="the child run to start")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    records = {r.workflow: r for r in await store.list(limit=10)}
    assert (records["slow-child"].status, records["caller"].status) == ("cancelled", "cancelled")
    assert records["slow-child"].error == "cancelled while running"
    async with get_client() as client:
        child_flow_run = await client.read_flow_run(child.flow_run_id)
    assert child_flow_run.state is not None and child_flow_run.state.is_final(), "the child's flow run ended too"


async def test_without_a_database_the_node_says_what_it_needs() -> None:
    result = await switchboard.arun(parent(call("c", "square", {"n": 1})), record=False)
    assert result.status == "failed"
    assert "has no database to find it in" in (result.nodes["c"].error or "")


async def test_a_static_cycle_is_refused_at_apply_naming_it(engine: Any) -> None:
    async with switchboard.Client(Settings.from_env(), engine=engine) as client:
        await client.workflows.apply({"name": "alpha", "nodes": [call("to_beta", "beta", {})]})
        await client.workflows.apply({"name": "beta", "nodes": [call("to_gamma", "gamma", {})]})
        with pytest.raises(switchboard.DefinitionError) as caught:
            await client.workflows.apply({"name": "gamma", "nodes": [call("back", "alpha", {})]})
        (problem,) = caught.value.problems
        assert (
            str(problem)
            == "node 'back': params.workflow: calls itself through stored workflows: gamma → alpha → beta → gamma"
        )
        with pytest.raises(switchboard.DefinitionError, match="selfish → selfish"):
            await client.workflows.apply({"name": "selfish", "nodes": [call("me", "selfish", {})]})
        templated = {"name": "gamma", "nodes": [call("back", "{{ 'alpha' }}", {})]}
        assert (await client.workflows.apply(templated)).version == 1, "a templated name is bounded at run time"


async def test_validate_checks_calls_against_the_stored_workflows(
    engine: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    await WorkflowStore(engine).apply({"name": "beta", "nodes": [call("to_gamma", "gamma", {})]}, actor="test")
    cyclic = tmp_path / "gamma.yaml"
    cyclic.write_text(yaml.safe_dump({"name": "gamma", "nodes": [call("back", "beta", {})]}))
    dangling = tmp_path / "delta.yaml"
    dangling.write_text(yaml.safe_dump({"name": "delta", "nodes": [call("later", "not-yet", {})]}))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    runner = CliRunner()

    refused = await asyncio.to_thread(runner.invoke, app, ["validate", str(cyclic)])
    assert refused.exit_code == 2, refused.output
    assert "calls itself through stored workflows: gamma → beta → gamma" in refused.output
    warned = await asyncio.to_thread(runner.invoke, app, ["validate", str(dangling)])
    assert warned.exit_code == 0, warned.output
    assert "node 'later' calls workflow 'not-yet', which is not stored" in warned.stderr
    assert "delta: 1 nodes, valid" in warned.stdout


async def test_a_user_who_may_not_run_the_child_fails_the_node_here_and_is_refused_before_the_workers(
    engine: Any,
) -> None:
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    outer = {"name": "outer", "nodes": [call("via", "caller", {})]}
    await WorkflowStore(engine).apply(parent(call("sq", "square", {"n": 2})), actor="test")
    await WorkflowStore(engine).apply(outer, actor="test")

    async def only_caller(name: str) -> str | None:
        return None if name in ("caller", "outer") else f"test:user may not run {name}"

    here = Settings.from_env().model_copy(update={"execution": "local"})
    async with switchboard.Client(here, engine=engine) as client:
        result = await client.runs.execute(
            "caller",
            {},
            version=1,
            run_id="a1b2c3d4e5f6",
            trigger="test",
            triggered_by="test:user",
            authorize=only_caller,
        )
    assert result.status == "failed"
    assert result.nodes["sq"].error == "may not run workflow 'square': test:user may not run square"
    assert [r.workflow for r in await RunStore(engine).list(limit=10)] == ["caller"], "the child never started"

    on_workers = Settings.from_env().model_copy(update={"execution": "remote"})
    async with switchboard.Client(on_workers, engine=engine) as client:
        with pytest.raises(SubWorkflowRefusedError) as refused:
            await client.runs.execute(
                "outer",
                {},
                version=1,
                run_id="0a1b2c3d4e5f",
                trigger="test",
                triggered_by="test:user",
                authorize=only_caller,
            )
    assert str(refused.value) == (
        "workflow 'outer' cannot run for you: it calls workflow 'square': test:user may not run square"
    ), "checked through the workflows it calls, before anything is queued"


async def test_runs_tree_shows_children_under_their_parent(
    engine: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    result = await switchboard.arun(
        parent(call("one", "square", {"n": 2}), call("two", "square", {"n": 3})), engine=engine
    )
    assert result.status == "completed"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["runs", "--tree"])  # the CLI runs its own loop
    assert shown.exit_code == 0, shown.output
    rows = [line for line in shown.stdout.splitlines() if "caller" in line or "square" in line]
    assert len(rows) == 3 and result.run_id in rows[0]
    children = {result.nodes[n].output["run_id"] for n in ("one", "two")}
    assert all("└ " in row and any(child in row for child in children) for row in rows[1:])


async def test_a_parents_usage_includes_its_children_and_its_budget_holds_them(
    engine: Any, fake_http: FakeHTTP
) -> None:
    from tests.fakes.openai import FakeOpenAI, completion

    ai = FakeOpenAI(fake_http)

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": "sk-test", "base_url": ai.base_url}

    summarize = {
        "name": "summarize",
        "outputs": {"text": "{{ nodes.ask.output.text }}"},
        "nodes": [{"id": "ask", "type": "ai.chat", "credential": "llm", "params": {"prompt": "hi", "model": "gpt-4o"}}],
    }
    await WorkflowStore(engine).apply(summarize, actor="test")
    ai.reply(
        *(completion(f"summary {i}", model="gpt-4o", prompt_tokens=1_000, completion_tokens=100) for i in range(3))
    )

    result = await switchboard.arun(
        parent(call("first", "summarize", {}), call("second", "summarize", {}, needs=["first"])),
        engine=engine,
        credential_resolver=resolve,
    )
    assert result.status == "completed", result.error
    assert (result.usage["total_tokens"], result.usage["calls"]) == (2_200, 2)
    assert result.usage["cost_usd"] == round(2 * (1_000 * 2.5 + 100 * 10) / 1e6, 6)
    child = await RunStore(engine).get(result.nodes["first"].output["run_id"])
    assert (child.total_tokens, child.cost_usd) == (1_100, round((1_000 * 2.5 + 100 * 10) / 1e6, 6))
    assert (await RunStore(engine).get(result.run_id)).total_tokens == 2_200

    # The parent's budget allows one child's call, not the second's.
    limited = await switchboard.arun(
        parent(
            call("first", "summarize", {}), call("second", "summarize", {}, needs=["first"]), budget={"tokens": 1_050}
        ),
        engine=engine,
        credential_resolver=resolve,
    )
    assert limited.status == "failed"
    assert limited.error is not None and limited.error.startswith("budget exceeded: 1,100 tokens spent")
    assert "budget of 1,050 tokens" in limited.error
    assert "budget exceeded" in (limited.nodes["second"].error or ""), "the child failed on the parent's budget"
    assert len(ai.requests()) == 3
