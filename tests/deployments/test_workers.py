"""Scale-out: a Prefect server on Postgres, two warm workers, 20 runs through the deployment.

Real processes on 127.0.0.1: `switchboard server` on a fresh Postgres database, two
`switchboard worker`s, Switchboard's own database on Postgres too. One run goes through the
CLI (`switchboard run NAME --remote --wait --json`), nineteen through the Python API
(:func:`switchboard.remote.submit`); all complete, both workers took some, and Prefect shows
every node of every run as a completed task run. Prints the delay from trigger to first node.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from functools import partial
from statistics import median, quantiles
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.warm_worker import Owner
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from switchboard import remote
from tests.helpers.polling import apoll_until
from tests.helpers.processes import Processes

NAME = "spread"
NODES = ["greet", "pause", "shout"]
WORKFLOW: dict[str, Any] = {
    "name": NAME,
    "inputs": {"who": {"type": "string", "required": True}},
    "nodes": [
        {"id": "greet", "type": "text.template", "params": {"template": "hello {{ inputs.who }}"}},
        # Long enough that runs overlap: a worker busy with 4 leaves the rest to the other.
        {"id": "pause", "type": "core.wait", "needs": ["greet"], "params": {"seconds": 1.5}},
        {
            "id": "shout",
            "type": "text.template",
            "needs": ["pause"],
            "params": {"template": "{{ nodes.greet.output.text | upper }}!"},
        },
    ],
}


async def test_twenty_runs_spread_over_two_workers_on_postgres(processes: Processes, postgres_databases: Any) -> None:
    prefect_db = await postgres_databases("prefect")
    switchboard_db = await postgres_databases("switchboard")
    processes.env["SWITCHBOARD_DATABASE_URL"] = switchboard_db
    server_start = asyncio.ensure_future(processes.start_server(prefect_db))
    engine = create_engine(switchboard_db)
    try:
        await upgrade(engine)
        await WorkflowStore(engine).apply(WORKFLOW, actor="test")
        await server_start
        code, _, stderr = await processes.cli("deploy")  # declares the pool and run-workflow/run-workflow
        assert code == 0, stderr
        await asyncio.gather(
            processes.start_worker("worker-a", "--limit", "4"), processes.start_worker("worker-b", "--limit", "4")
        )

        # One run from the CLI, waited for, printing the run result JSON.
        # Waited for among twenty runs on two workers: as long as the others may take (below).
        cli_run = asyncio.ensure_future(
            processes.cli("run", NAME, "--remote", "--wait", "--json", "-i", "who=cli", timeout=150)
        )
        with temporary_settings({PREFECT_API_URL: processes.api}):
            queued = [
                await remote.submit(engine, NAME, {"who": f"user{i}"}, trigger="test", triggered_by="test:e2e")
                for i in range(19)
            ]
            results = await asyncio.gather(*(remote.wait(engine, run, timeout=120) for run in queued))
        code, stdout, stderr = await cli_run
        assert code == 0, stderr
        cli_result = json.loads(stdout)
        assert cli_result["status"] == "completed" and cli_result["nodes"]["shout"]["output"] == {"text": "HELLO CLI!"}
        assert set(cli_result) >= {"run_id", "flow_run_id", "workflow", "version", "nodes", "usage", "error"}

        for run, result in zip(queued, results, strict=True):
            assert result["status"] == "completed", result
            assert result["run_id"] == run.run_id
            assert result["nodes"]["shout"]["output"] == {"text": f"HELLO {run_id_who(result)}!"}
        records = await RunStore(engine).list(workflow=NAME, limit=50)
        assert len(records) == 20 and {r.status for r in records} == {"completed"}

        with temporary_settings({PREFECT_API_URL: processes.api}):
            async with get_client() as client:
                by_worker: Counter[str] = Counter()
                delays: list[float] = []
                for record in records:
                    assert record.flow_run_id is not None
                    runner = await client.read_flow_run(record.flow_run_id)
                    assert runner.parent_task_run_id is not None
                    parent = await client.read_flow_run(
                        (await client.read_task_run(runner.parent_task_run_id)).flow_run_id
                    )
                    owner = Owner.decode(parent.infrastructure_pid)
                    assert owner is not None, parent.infrastructure_pid
                    by_worker[owner.worker] += 1
                    task_runs = await apoll_until(
                        partial(completed_nodes, client, record.flow_run_id),
                        timeout=20,
                        interval=0.2,
                        message="every node as a completed task run",
                    )
                    first_node = min(t.start_time for t in task_runs)
                    delays.append((first_node - parent.created).total_seconds())
        assert set(by_worker) == {"worker-a", "worker-b"}, by_worker
        p95 = quantiles(delays, n=20)[-1]
        print(
            f"\n20 runs on two warm workers: {dict(by_worker)}; trigger -> first node running, queueing "
            f"included (20 runs for 8 slots): median {median(delays):.2f}s, p95 {p95:.2f}s"
        )
    finally:
        await engine.dispose()


def run_id_who(result: dict[str, Any]) -> str:
    return str(result["inputs"]["who"]).upper()


async def completed_nodes(client: Any, flow_run_id: str | None) -> list[Any]:
    assert flow_run_id is not None
    found = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    done = [t for t in found if t.state is not None and t.state.is_completed() and t.start_time is not None]
    return done if sorted(t.name for t in done) == sorted(NODES) else []
