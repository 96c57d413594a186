"""Faults on real processes: a worker killed mid-run, Postgres restarted mid-run, a provider down.

Real processes on 127.0.0.1 (`switchboard server`, `switchboard worker`, the CLI) and a fake
HTTP provider. What a user sees, proved here:

1. **A worker SIGKILLed mid-run**: the run does not hang. Once a worker with the same name is
   back (systemd restarting it), the run ends Crashed in Prefect (its runner subflow too), its
   run record says ``crashed`` naming the worker, and ``remote.wait`` returns ``crashed``.
   ``switchboard retry --remote`` then finishes it on a worker: the node that had completed (an HTTP POST, a side
   effect) comes back from Prefect's result storage (``cached: true``) and is not sent again;
   the provider saw exactly one POST from each side-effecting node in total.
2. **Postgres restarted mid-run** (the Prefect server's database and Switchboard's, in a
   cluster of the test's own): five runs waiting in a node while the cluster restarts all
   end, and each has its run record with a final status; none is lost or left ``running``.
3. **A provider answering 503 for 30 s**: runs of a node with retries outlast the outage and
   complete (attempts > 1, spaced by the provider's Retry-After); runs of a node without
   retries fail at once with an error naming the 503. Nothing hangs.

Prints the measured times (kill -> Crashed, the retry, the restart, the outage).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import pytest
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from deployments.warm_worker import Owner
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import FINAL_STATUSES, RunRecord, RunRecordNotFoundError, RunStore
from storage.workflows import WorkflowStore
from switchboard import remote
from switchboard.runs import reconcile
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.fakes.http import FakeHTTP, Recorded, Reply
from tests.helpers.polling import apoll_until
from tests.helpers.processes import Processes, free_port


@asynccontextmanager
async def stack(
    processes: Processes,
    workflows: list[dict[str, Any]],
    *,
    prefect_db: str | None = None,
    switchboard_db: str | None = None,
) -> AsyncIterator[AsyncEngine]:
    """A `switchboard server` (on ``prefect_db``, else SQLite), Switchboard's database migrated
    with ``workflows`` stored, and a Prefect client pointed at the server for this process.
    Workers may call the fakes on 127.0.0.1."""
    processes.env["SWITCHBOARD_HTTP_ALLOW_HOSTS"] = "127.0.0.1"
    if switchboard_db is not None:
        processes.env["SWITCHBOARD_DATABASE_URL"] = switchboard_db
    server_start = asyncio.ensure_future(processes.start_server(prefect_db))
    engine = create_engine(processes.env["SWITCHBOARD_DATABASE_URL"])
    try:
        await upgrade(engine)
        for workflow in workflows:
            await WorkflowStore(engine).apply(workflow, actor="test")
        await server_start
        with temporary_settings({PREFECT_API_URL: processes.api}):
            yield engine
    finally:
        if not server_start.done():
            server_start.cancel()
        await engine.dispose()


async def flow_run_state(client: PrefectClient, flow_run_id: str | UUID) -> StateType | None:
    flow_run = await client.read_flow_run(UUID(str(flow_run_id)))
    return flow_run.state.type if flow_run.state is not None else None


async def record_of(store: RunStore, run_id: str) -> RunRecord | None:
    try:
        return await store.get(run_id)
    except RunRecordNotFoundError:
        return None


async def running_node(client: PrefectClient, flow_run_id: str, node: str) -> bool:
    """Whether Prefect shows the task run of ``node`` in the runner flow run as Running."""
    task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)])))
    return any(t.name == node and t.state is not None and t.state.type == StateType.RUNNING for t in task_runs)


# --- 1. a worker killed mid-run ---------------------------------------------------------------

SIDE_EFFECTS = "side-effects"


def side_effects(fake: FakeHTTP) -> dict[str, Any]:
    return {
        "name": SIDE_EFFECTS,
        "inputs": {"order": {"type": "string", "required": True}},
        "nodes": [
            {
                "id": "side_effect",
                "type": "http.request",
                "params": {"method": "POST", "url": fake.url("/charge"), "json": {"order": "{{ inputs.order }}"}},
            },
            {
                "id": "slow",
                "type": "core.wait",
                "needs": ["side_effect"],
                # Long enough to kill the worker during it; the retry re-runs it (it never
                # completed), briefly: the test has no reason to wait 20 s twice.
                "params": {"seconds": "{{ 1 if run.trigger == 'retry' else 20 }}"},
            },
            {
                "id": "after",
                "type": "http.request",
                "needs": ["slow"],
                "params": {"method": "POST", "url": fake.url("/ship"), "json": {"order": "{{ inputs.order }}"}},
            },
        ],
    }


async def test_worker_killed_mid_run_ends_crashed_and_retry_does_not_repeat_side_effects(
    processes: Processes, fake_http: FakeHTTP
) -> None:
    fake_http.script("POST", "/charge", Reply(200, {"charged": True}))
    fake_http.script("POST", "/ship", Reply(200, {"shipped": True}))
    async with stack(processes, [side_effects(fake_http)]) as engine:
        store = RunStore(engine)
        worker = await processes.start_worker("worker-a", "--limit", "2")
        run = await remote.submit(engine, SIDE_EFFECTS, {"order": "A-1"}, trigger="test", triggered_by="test:faults")

        async with get_client() as client:

            async def in_slow_node() -> bool:
                assert worker.returncode is None, processes.log("worker-a")
                record = await record_of(store, run.run_id)
                if record is None or record.flow_run_id is None or not fake_http.calls("/charge"):
                    return False
                return await running_node(client, record.flow_run_id, "slow")

            await apoll_until(
                in_slow_node, timeout=60, interval=0.2, message="the run to POST its side effect and wait in `slow`"
            )
            deployment_run = await client.read_flow_run(run.flow_run_id)
            owner = Owner.decode(deployment_run.infrastructure_pid)
            assert owner is not None and owner.pid == worker.pid and owner.worker == "worker-a", owner

            os.kill(worker.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            await worker.wait()
            shutil.copy(processes.logs / "worker-a.log", processes.logs / "worker-a-killed.log")
            assert deployment_run.state is not None and deployment_run.state.type == StateType.RUNNING

            # systemd restarts it: the new worker-a reaps its dead predecessor's run at start-up.
            await processes.start_worker("worker-a", "--limit", "2")
            record = await store.get(run.run_id)
            assert record.flow_run_id is not None
            runner_flow_run = record.flow_run_id

            async def crashed_everywhere() -> bool:
                return (
                    await flow_run_state(client, run.flow_run_id) == StateType.CRASHED
                    and await flow_run_state(client, runner_flow_run) == StateType.CRASHED
                    and (await store.get(run.run_id)).status == "crashed"
                )

            await apoll_until(
                crashed_everywhere,
                timeout=60,
                interval=0.2,
                message="the run, its runner subflow and its record to be crashed",
            )
            to_crashed = time.monotonic() - killed_at

        record = await store.get(run.run_id)
        assert record.error is not None and "worker-a" in record.error and str(worker.pid) in record.error, record
        assert "marked 1 run(s) of stopped workers Crashed" in processes.log("worker-a")  # and says so
        waited = await remote.wait(engine, run, timeout=30)
        assert waited["status"] == "crashed" and "worker-a" in waited["error"], waited
        assert len(fake_http.calls("/charge")) == 1 and not fake_http.calls("/ship")

        started = time.monotonic()
        # On a worker, as a Slack Retry button would: the restarted worker-a resumes it.
        code, stdout, stderr = await processes.cli("retry", run.run_id, "--remote", "--wait", "--json")
        retry_seconds = time.monotonic() - started
        assert code == 0, stderr
        retried = json.loads(stdout)
        assert retried["status"] == "completed", retried
        assert retried["resumed_from"] == run.run_id and retried["run_id"] != run.run_id
        nodes = retried["nodes"]
        assert nodes["side_effect"]["cached"] is True and nodes["side_effect"]["status"] == "completed", nodes
        assert nodes["side_effect"]["output"]["json"] == {"charged": True}
        assert nodes["slow"]["cached"] is False and nodes["slow"]["status"] == "completed", nodes
        assert nodes["after"]["cached"] is False and nodes["after"]["output"]["json"] == {"shipped": True}, nodes

        # The provider's own log: one charge (before the kill), one shipment (by the retry).
        charges, shipments = fake_http.calls("/charge", "POST"), fake_http.calls("/ship", "POST")
        assert [c.json() for c in charges] == [{"order": "A-1"}], charges
        assert [c.json() for c in shipments] == [{"order": "A-1"}], shipments
        assert (await store.get(retried["run_id"])).status == "completed"
        print(
            f"\nworker SIGKILLed mid-run: Crashed in Prefect and in the run record {to_crashed:.1f}s after the "
            f"kill (worker restart included); `switchboard retry` completed it in {retry_seconds:.1f}s "
            f"(CLI start-up included), the side effect reused from result storage"
        )


# --- 2. Postgres restarted mid-run ------------------------------------------------------------

PAUSING = "pausing"
PAUSE_SECONDS = 10
PAUSING_WORKFLOW: dict[str, Any] = {
    "name": PAUSING,
    "inputs": {"who": {"type": "string", "required": True}},
    "nodes": [
        {"id": "greet", "type": "text.template", "params": {"template": "hello {{ inputs.who }}"}},
        {"id": "pause", "type": "core.wait", "needs": ["greet"], "params": {"seconds": PAUSE_SECONDS}},
        {
            "id": "shout",
            "type": "text.template",
            "needs": ["pause"],
            "params": {"template": "{{ nodes.greet.output.text | upper }}!"},
        },
    ],
}


async def _run(*argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@dataclass
class Cluster:
    """A PostgreSQL cluster of this test's own: restarting it disturbs no other test."""

    version: str
    name: str
    port: int

    @property
    def control(self) -> list[str]:
        return ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name]

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def answers(self) -> bool:
        try:
            connection = await asyncpg.connect(self.admin_dsn, timeout=2)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await connection.close()
        return True

    async def ensure_up(self) -> None:
        """Start the cluster if a failed restart left it down; wait until it accepts connections."""
        if not await self.answers():
            await _run(*self.control, "start")
        await apoll_until(self.answers, timeout=60, interval=0.2, message="PostgreSQL to accept connections again")

    async def database(self, label: str) -> str:
        """A new database in the cluster, as a SQLAlchemy URL."""
        connection = await asyncpg.connect(self.admin_dsn, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "sb_{label}"')
        finally:
            await connection.close()
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/sb_{label}"


@pytest.fixture
async def own_cluster() -> AsyncIterator[Cluster]:
    """A fresh PostgreSQL cluster (Debian's pg_createcluster, trust auth, a free port), dropped
    at the end. The tests' shared cluster is never restarted: other tests run on it meanwhile."""
    dsn = urlsplit(POSTGRES_ADMIN_DSN)
    tools = [shutil.which(tool) for tool in ("pg_lsclusters", "pg_createcluster", "pg_ctlcluster", "pg_dropcluster")]
    may_control = os.geteuid() == 0 or pwd.getpwuid(os.geteuid()).pw_name == "postgres"
    if dsn.hostname not in ("127.0.0.1", "localhost", "::1") or None in tools or not may_control:
        why = "needs Debian's PostgreSQL cluster tools, run as root or postgres"
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot make a PostgreSQL cluster to restart: {why} (CI=true)")
        pytest.skip(f"cannot make a PostgreSQL cluster to restart: {why}")
    code, output = await _run("pg_lsclusters", "--no-header")
    versions = sorted({line.split()[0] for line in output.splitlines() if line.split()} if code == 0 else set())
    assert versions, f"pg_lsclusters shows no PostgreSQL version: {output}"
    cluster = Cluster(versions[-1], f"sbfaults{os.getpid()}", free_port())
    code, output = await _run(
        "pg_createcluster", cluster.version, cluster.name, "-p", str(cluster.port), "--start", "--", "--auth=trust"
    )
    assert code == 0, f"pg_createcluster: {output}"
    try:
        await cluster.ensure_up()
        yield cluster
    finally:
        await _run("pg_dropcluster", "--stop", cluster.version, cluster.name)


async def test_postgres_restart_mid_run_loses_no_run(own_cluster: Cluster, processes: Processes) -> None:
    # own_cluster first: it is dropped after the processes using it stop.
    cluster = own_cluster.control
    prefect_db = await own_cluster.database("prefect")
    switchboard_db = await own_cluster.database("switchboard")
    async with stack(processes, [PAUSING_WORKFLOW], prefect_db=prefect_db, switchboard_db=switchboard_db) as engine:
        store = RunStore(engine)
        workers = await asyncio.gather(
            processes.start_worker("worker-a", "--limit", "3"), processes.start_worker("worker-b", "--limit", "3")
        )
        runs = [await remote.submit(engine, PAUSING, {"who": f"user{i}"}, trigger="test") for i in range(5)]

        async with get_client() as client:

            async def all_pausing() -> bool:
                for worker, name in zip(workers, ("worker-a", "worker-b"), strict=True):
                    assert worker.returncode is None, processes.log(name)
                records = [await record_of(store, run.run_id) for run in runs]
                if any(r is None or r.flow_run_id is None for r in records):
                    return False
                return all([await running_node(client, r.flow_run_id, "pause") for r in records if r and r.flow_run_id])

            await apoll_until(
                all_pausing, timeout=60, interval=0.2, message="the five runs to be in their `pause` node"
            )

        # Wait for the runs through the restart, as `switchboard run --remote --wait` would.
        waits = [asyncio.ensure_future(remote.wait(engine, run, timeout=150)) for run in runs]
        started = time.monotonic()
        try:
            code, output = await _run(*cluster, "restart")
            restart_seconds = time.monotonic() - started
            assert code == 0, f"{' '.join(cluster)} restart: {output}"
        finally:
            await own_cluster.ensure_up()
        back_seconds = time.monotonic() - started

        results = await asyncio.gather(*waits, return_exceptions=True)
        ended_seconds = time.monotonic() - started
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"waiting for a run failed: {failures!r}\n{processes.log('server')}"

        records = await store.list(workflow=PAUSING, limit=50)
        before = {r.id: r.status for r in records}
        await reconcile(store, records)
        records = await store.list(workflow=PAUSING, limit=50)
        assert sorted(r.id for r in records) == sorted(run.run_id for run in runs), before
        not_final = [r.to_dict() for r in records if r.status not in FINAL_STATUSES]
        assert not not_final, f"run records left unfinished after reconciliation: {not_final}"
        unexplained = [r.to_dict() for r in records if r.status != "completed" and not r.error]
        assert not unexplained, f"runs that did not complete without saying why: {unexplained}"
        by_run = {r.id: r for r in records}
        statuses = [by_run[run.run_id].status for run in runs]
        async with get_client() as client:
            for run, result in zip(runs, results, strict=True):
                assert isinstance(result, dict)
                assert result["status"] == by_run[run.run_id].status, (result, by_run[run.run_id])
                prefect_state = await flow_run_state(client, run.flow_run_id)
                assert prefect_state is not None and prefect_state.value.lower() == result["status"], prefect_state
        print(
            f"\nPostgres restarted mid-run ({restart_seconds:.1f}s, accepting connections {back_seconds:.1f}s "
            f"after the restart began): 5 runs ended {ended_seconds:.1f}s after it began; statuses {statuses}; "
            f"records before reconciliation {sorted(before.values())}"
        )
        # A fault, not a lost run: what is expected of a restart this short.
        assert statuses == ["completed"] * 5, [by_run[run.run_id].to_dict() for run in runs]


# --- 3. a provider answering 503 for 30 s -----------------------------------------------------

OUTAGE_SECONDS = 30.0
RETRY_AFTER_SECONDS = 5


class Outage:
    """A provider endpoint that answers 503 (with Retry-After) for :data:`OUTAGE_SECONDS`
    after its first request, and to each run's first request (on a loaded machine a run may
    start after the outage), then 200."""

    def __init__(self) -> None:
        self.began: float | None = None
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> Reply:
        runs = set(request.query.get("run", []))
        with self._lock:
            if self.began is None:
                self.began = request.at
            first_call, self._seen = not runs <= self._seen, self._seen | runs
        if first_call or request.at - self.began < OUTAGE_SECONDS:
            return Reply(503, "upstream overloaded", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return Reply(200, {"ok": True})


def calling(fake: FakeHTTP, name: str, **retry: Any) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "call",
                "type": "http.request",
                "params": {"url": fake.url("/flaky"), "query": {"run": "{{ run.id }}"}},
                **retry,
            }
        ],
    }


async def test_provider_503_for_30s_retrying_nodes_outlast_it_others_fail_clearly(
    processes: Processes, fake_http: FakeHTTP
) -> None:
    outage = Outage()
    fake_http.route("GET", "/flaky", outage)
    # The node waits 2 s between attempts, the provider asks for 5: Retry-After wins.
    patient = calling(fake_http, "patient", retries=8, retry_delay=2)
    impatient = calling(fake_http, "impatient")
    async with stack(processes, [patient, impatient]) as engine:
        await processes.start_worker("worker-a", "--limit", "8")
        runs = [
            await remote.submit(engine, name, {}, trigger="test") for _ in range(3) for name in ("patient", "impatient")
        ]
        started = time.monotonic()
        results = await asyncio.gather(*(remote.wait(engine, run, timeout=120) for run in runs))
        took = time.monotonic() - started

    def requests_of(run: remote.RemoteRun) -> list[Recorded]:
        return [r for r in fake_http.calls("/flaky", "GET") if r.query.get("run") == [run.run_id]]

    attempts: list[int] = []
    for run, result in zip(runs, results, strict=True):
        call = result["nodes"]["call"]
        sent = requests_of(run)
        assert call["attempts"] == len(sent), (call, len(sent))
        if run.workflow == "patient":
            assert result["status"] == "completed", result
            assert call["attempts"] > 1 and call["output"]["status"] == 200, call
            assert outage.began is not None and sent[-1].at - outage.began >= OUTAGE_SECONDS
            gaps = [b.at - a.at for a, b in pairwise(sent)]
            assert min(gaps) >= RETRY_AFTER_SECONDS - 0.5, f"Retry-After not honoured: gaps {gaps}"
            attempts.append(call["attempts"])
        else:
            assert result["status"] == "failed" and call["status"] == "failed" and call["attempts"] == 1, result
            for error in (result["error"], call["error"]):
                assert "503" in error and "upstream overloaded" in error and "/flaky" in error, error
    print(
        f"\nprovider 503 for {OUTAGE_SECONDS:.0f}s: 3 runs with retries completed after {attempts} attempts, "
        f"3 without failed at once naming the 503; all 6 ended {took:.1f}s after submission; "
        f"impatient error: {results[1]['error']!r}"
    )
