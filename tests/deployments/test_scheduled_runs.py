"""A scheduled workflow fires on its schedule, run by real `switchboard server` and `switchboard worker`.

Real processes on 127.0.0.1: `switchboard server` on a fresh SQLite Prefect database,
`switchboard deploy` (twice: the second changes nothing), `switchboard worker`; the
workflow's interval schedule fires and the worker runs it; removing the schedule and
deploying again removes the deployment. Prints the delay from each run's scheduled time to
its first node running.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from pathlib import Path
from statistics import median
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, TaskRun
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.sync import deployment_name
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunRecord, RunStore
from storage.workflows import WorkflowStore
from tests.helpers.polling import apoll_until
from tests.helpers.processes import Processes

NAME = "ticker"
INTERVAL = 3


def ticker(schedule: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": NAME,
        "inputs": {"who": {"type": "string", "required": True}},
        "nodes": [
            {"id": "greet", "type": "text.template", "params": {"template": "hello {{ inputs.who }}"}},
            {
                "id": "shout",
                "type": "text.template",
                "needs": ["greet"],
                "params": {"template": "{{ nodes.greet.output.text | upper }}!"},
            },
        ],
    }
    if schedule is not None:
        data["schedule"] = schedule
    return data


async def completed_scheduled_runs(runs: RunStore) -> list[RunRecord]:
    records = await runs.list(workflow=NAME, limit=50)
    broken = [r for r in records if r.status in ("failed", "crashed", "cancelled")]
    assert not broken, f"a scheduled run did not complete: {broken[0].to_dict()}"
    return [r for r in records if r.status == "completed" and r.trigger == "schedule"]


async def task_runs_of(client: Any, flow_run_id: str) -> list[TaskRun]:
    return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


async def completed_nodes(client: Any, flow_run_id: str) -> list[TaskRun]:
    """The run's task runs once both nodes show as completed (rows are written from events)."""
    found = await task_runs_of(client, flow_run_id)
    complete = all(t.state is not None and t.state.is_completed() for t in found)
    return found if complete and sorted(t.name for t in found) == ["greet", "shout"] else []


async def test_interval_schedule_fires_on_a_worker_and_deploy_is_idempotent(
    processes: Processes, tmp_path: Path
) -> None:
    server_start = asyncio.ensure_future(processes.start_server())

    # While the server migrates its fresh database: Switchboard's database and the workflow.
    engine = create_engine(processes.env["SWITCHBOARD_DATABASE_URL"])
    try:
        await upgrade(engine)
        store = WorkflowStore(engine)
        await store.apply(ticker({"interval": INTERVAL, "inputs": {"who": "team"}}), actor="test")

        server = await server_start
        api = processes.api
        assert f"export PREFECT_API_URL={api}" in processes.log("server")

        code, stdout, stderr = await processes.cli("deploy", "--json")
        assert code == 0, stderr
        assert [(d["workflow"], d["action"]) for d in json.loads(stdout)["deployments"]] == [(NAME, "created")]

        # The worker starts while the second deploy checks that nothing changed.
        worker = await processes.start("worker", "worker", "--limit", "4", "--name", "test-worker")
        code, stdout, stderr = await processes.cli("deploy", NAME)
        assert code == 0, stderr
        assert "unchanged" in stdout and "in sync: nothing changed" in stdout

        runs = RunStore(engine)

        async def two_runs() -> list[RunRecord]:
            assert worker.returncode is None, processes.log("worker")
            done = await completed_scheduled_runs(runs)
            return done if len(done) >= 2 else []

        done = await apoll_until(
            two_runs, timeout=60, interval=0.2, message="two scheduled runs to complete on the worker"
        )

        with temporary_settings({PREFECT_API_URL: api}):
            async with get_client() as client:
                deployment = await client.read_deployment_by_name(f"run-workflow/{deployment_name(NAME)}")
                delays = []
                for record in done:
                    assert record.flow_run_id is not None and record.triggered_by == f"deployment:{deployment.name}"
                    task_runs = await apoll_until(
                        partial(completed_nodes, client, record.flow_run_id),
                        timeout=15,
                        interval=0.2,
                        message="the nodes as completed task runs in Prefect",
                    )
                    # The runner is a subflow of the deployment's flow run, which the schedule made.
                    runner_run = await client.read_flow_run(record.flow_run_id)
                    assert runner_run.parent_task_run_id is not None
                    parent_task = await client.read_task_run(runner_run.parent_task_run_id)

                    async def scheduled_run_completed(flow_run_id: Any = parent_task.flow_run_id) -> FlowRun | None:
                        # The deployment's flow run ends a moment after the runner it holds.
                        found: FlowRun = await client.read_flow_run(flow_run_id)
                        return found if found.state is not None and found.state.is_completed() else None

                    scheduled = await apoll_until(
                        scheduled_run_completed, timeout=15, message="the scheduled flow run to complete"
                    )
                    assert scheduled.deployment_id == deployment.id
                    assert scheduled.auto_scheduled
                    first_node = min(t.start_time for t in task_runs if t.start_time is not None)
                    assert scheduled.expected_start_time is not None and scheduled.start_time is not None
                    delays.append(
                        (
                            (scheduled.start_time - scheduled.expected_start_time).total_seconds(),
                            (first_node - scheduled.expected_start_time).total_seconds(),
                        )
                    )
        print(
            f"\nscheduled time -> flow run Running: median {median(d[0] for d in delays):.2f}s; "
            f"-> first node running: median {median(d[1] for d in delays):.2f}s "
            f"(max {max(d[1] for d in delays):.2f}s; {len(delays)} runs)"
        )
        # A sanity bound: the first runs after a worker starts pay its start-up on 2 busy cores.
        assert max(d[1] for d in delays) < 30

        # Removing the schedule removes the deployment.
        await store.apply(ticker(None), actor="test")
        code, stdout, stderr = await processes.cli("deploy", "--json")
        assert code == 0, stderr
        assert [(d["workflow"], d["action"]) for d in json.loads(stdout)["deployments"]] == [(NAME, "removed")]
        with temporary_settings({PREFECT_API_URL: api}):
            async with get_client() as client:
                assert not [d for d in await client.read_deployments() if d.name == deployment_name(NAME)]

        # SIGTERM is forwarded: both stop cleanly (stop() kills, and returns None, after 20 s).
        assert await processes.stop(worker) == 0, processes.log("worker")
        assert await processes.stop(server) == 0, processes.log("server")
    finally:
        await engine.dispose()
