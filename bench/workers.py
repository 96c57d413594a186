"""Workers under load, and trigger to first node: ``python -m bench.workers [--runs N] [--nodes N] [--seq N]``.

Real processes on 127.0.0.1, as in production: ``switchboard server`` (Prefect's server, on a
fresh PostgreSQL database), ``switchboard deploy`` (the work pool and the on-demand deployment
``run-workflow/run-workflow``), and ``switchboard worker`` processes; Switchboard's own
database is a second fresh PostgreSQL database. Runs are queued from this process with
:func:`switchboard.remote.submit`, as the CLI and the bot do. Both databases are dropped and
every process stopped at the end, also on error or Ctrl-C.

The workflow (``--nodes``, default 20) is light, local work only: ``core.set``,
``text.template`` and ``json.query`` nodes in four parallel chains, each node reading the
previous node of its chain and one node of the next chain (so the chains cross-reference).

1. **Load** (``--runs``, default 100): ONE warm worker with ``--limit`` equal to the number of
   runs. All runs are queued at once (concurrent ``submit`` calls), then followed with one
   batched ``read_flow_runs`` poll per second (not one poll per run, which would add its own
   load to the server). Reported: wall time from the first submit to the last deployment
   flow run's ``end_time``, runs per minute, per-run queueing (created -> Running) and
   duration (Running -> ended); how long the server takes to answer ``GET /health`` (no
   database work: the delay of its event loop), idle and during the load; the peak memory
   (``VmHWM`` from ``/proc/<pid>/status``) of the worker and of the server; CPU seconds of
   the worker, the server, PostgreSQL, this process and everything else on the machine; and
   whether anything was lost: every run record completed in Switchboard's database, every
   deployment flow run Completed, and runs x nodes completed task runs in Prefect (read in
   pages of 200; the task-run recorder writes them asynchronously, so the bench waits for
   them and says how long that took). Server errors (500/503 logged by the server, error
   lines in the worker log) and failed submits are counted, not hidden. Baselines: the same
   load on a fresh warm worker with ``--compare-limit`` (default 10), and one run at a time
   on the idle warm worker (from part 2).
2. **Trigger to first node** (``--seq``, default 20 sequential runs after one warm-up run, on an
   idle worker): from the deployment flow run's ``created`` to the earliest ``start_time`` of a
   task run of the run's runner subflow (the run record's ``flow_run_id``), with the stages
   in between (created -> deployment flow run Running -> runner subflow Running -> first node).
   The warm worker (runs in-process) against ``--isolated`` (Prefect's process worker, a new
   Python process per run), one after the other in this bench process; ratio warm/isolated.

Prints the settings the processes ran with (worker polling, server task-run recorder), how
busy the machine was before the bench started, tables and ratios, and a warning if the local
PostgreSQL restarted meanwhile; never fails on numbers. About 6-8 minutes with the defaults on
2 cores. ``--keep-logs`` keeps the server's and workers' logs.
"""

from __future__ import annotations

import os
import sys
import tempfile

_HOME = tempfile.mkdtemp(prefix="switchboard-bench-workers-")
os.environ["SWITCHBOARD_HOME"] = os.path.join(_HOME, "home")
os.environ["PREFECT_HOME"] = os.path.join(_HOME, "prefect")
for _var in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH", "SWITCHBOARD_DATABASE_URL"):
    os.environ.pop(_var, None)
# Quiet for this process only: the server and workers log as they would in production.
_CHILD_CONSOLE_LEVEL = os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import switchboard  # noqa: E402, I001 - applies Prefect defaults before prefect is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from uuid import UUID  # noqa: E402

import asyncpg  # noqa: E402
from prefect.client.orchestration import PrefectClient, get_client  # noqa: E402
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter  # noqa: E402
from prefect.client.schemas.filters import TaskRunFilterStartTime  # noqa: E402
from prefect.client.schemas.objects import FlowRun, TaskRun  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from deployments.processes import SERVER_DEFAULTS, WORKER_DEFAULTS  # noqa: E402
from storage.db import create_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.runs import RunRecord, RunRecordNotFoundError, RunStore  # noqa: E402
from storage.workflows import WorkflowStore  # noqa: E402
from switchboard import remote  # noqa: E402
from tests.helpers.polling import apoll_until  # noqa: E402
from tests.helpers.processes import Processes, descendants  # noqa: E402

POSTGRES_ADMIN_DSN = os.environ.get("SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
NAME = "bench-workers"
CHAINS = 4
PAGE = 200  # Prefect's largest page


# --- the workflow ---------------------------------------------------------------------------


def _type(step: int) -> str:
    return ("core.set", "text.template", "json.query")[step % 3]


def _text(index: int) -> str:
    """The path of node ``index``'s text output (json.query outputs ``result``)."""
    step = index // CHAINS
    return f"nodes.n{index}.output." + ("result" if _type(step) == "json.query" else "text")


def workflow(n_nodes: int) -> dict[str, Any]:
    """``n_nodes`` light nodes in :data:`CHAINS` chains; node ``i`` is in chain ``i % CHAINS``.

    Step 0 of each chain is a ``core.set`` reading the input; every later node reads the
    previous node of its chain (its text grows by a few characters a step) and the length of
    the previous step's node of the next chain. Steps cycle core.set -> text.template ->
    json.query.
    """
    nodes: list[dict[str, Any]] = []
    for i in range(n_nodes):
        chain, step = i % CHAINS, i // CHAINS
        node_id = f"n{i}"
        if step == 0:
            nodes.append(
                {
                    "id": node_id,
                    "type": "core.set",
                    "params": {"values": {"text": f"{{{{ inputs.who }}}}-{chain}", "chain": chain}},
                }
            )
            continue
        prev = i - CHAINS
        other = (step - 1) * CHAINS + (chain + 1) % CHAINS
        if other >= n_nodes:  # a short last step: fall back to the own chain
            other = prev
        text = f"{{{{ {_text(prev)} }}}}.{step}:{{{{ {_text(other)} | length }}}}"
        kind = _type(step)
        if kind == "core.set":
            params: dict[str, Any] = {"values": {"text": text, "step": step, "items": [chain, step, i]}}
        elif kind == "text.template":
            params = {"template": text}
        else:
            # json.query reads the previous text.template's whole output and keeps its text.
            params = {"data": f"{{{{ nodes.n{prev}.output }}}}", "expression": "text"}
        nodes.append({"id": node_id, "type": kind, "params": params})
    return {
        "name": NAME,
        "description": "bench.workers: light nodes in parallel chains",
        "inputs": {"who": {"type": "string", "required": True}},
        "nodes": nodes,
    }


# --- processes, databases, /proc --------------------------------------------------------------


def _own_session_dying_with_parent() -> None:
    # Our Ctrl-C does not reach the children directly (we stop them, in order); a bench killed
    # with SIGKILL still stops them (PR_SET_PDEATHSIG).
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _processes(env: dict[str, str], logs: Path) -> Processes:
    """The bench's ``switchboard`` processes (the tests' harness): each in its own session,
    dying with the bench; 45 s to stop after SIGTERM (a loaded worker drains slowly)."""
    return Processes(env, logs, stop_timeout=45, preexec_fn=_own_session_dying_with_parent)


async def _cli(processes: Processes, *args: str) -> str:
    """``switchboard ARGS`` to its end; its output, or RuntimeError if it failed."""
    code, stdout, stderr = await processes.cli(*args, timeout=120)
    if code != 0:
        raise RuntimeError(f"switchboard {' '.join(args)} exited {code}:\n{stdout}{stderr}")
    return stdout


async def _postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    return [pid, *descendants(pid)]


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _postmaster() -> int | None:
    """The pid of the local PostgreSQL server's postmaster (None: not on this machine)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == "postgres" and stat.rsplit(")", 1)[1].split()[1] == "1":
            return int(entry)
    return None


def _postgres_cpu() -> float:
    """CPU seconds of the local PostgreSQL server: the postmaster, its live backends, and the
    backends it already reaped (its cutime/cstime)."""
    pid = _postmaster()
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return own + sum(_cpu_seconds(child) for child in _tree(pid)[1:])


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, sum(values[:8]) / tick


def _bench_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuSnapshot:
    worker: float
    server: dict[int, float]
    bench: float
    postgres: float
    machine: tuple[float, float]
    at: float = field(default_factory=time.monotonic)

    @classmethod
    def take(cls, worker: int, server: list[int]) -> CpuSnapshot:
        server_cpu = {pid: _cpu_seconds(pid) for pid in server}
        return cls(_cpu_seconds(worker), server_cpu, _bench_cpu(), _postgres_cpu(), _machine_cpu())


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f} s, p95 {_pct(values, 0.95):.2f} s, max {max(values):.2f} s"


# --- reading runs back from Prefect -----------------------------------------------------------


async def _flow_runs(client: PrefectClient, ids: list[UUID]) -> list[FlowRun]:
    found: list[FlowRun] = []
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        found += await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=PAGE)
    return found


async def _task_runs(client: PrefectClient, flow_run_ids: list[UUID]) -> list[TaskRun]:
    """Every task run of these flow runs, in pages of 200."""
    found: list[TaskRun] = []
    for start in range(0, len(flow_run_ids), 50):
        flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids[start : start + 50]))
        offset = 0
        while True:
            page = await client.read_task_runs(flow_run_filter=flow_filter, limit=PAGE, offset=offset)
            found += page
            offset += len(page)
            if len(page) < PAGE:
                break
    return found


async def _first_node_start(client: PrefectClient, runner_id: UUID) -> datetime | None:
    started = await client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runner_id])),
        task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(is_null_=False)),
        limit=PAGE,
    )
    times = [t.start_time for t in started if t.start_time is not None]
    return min(times) if times else None


async def _record(store: RunStore, run_id: str) -> RunRecord | None:
    try:
        return await store.get(run_id)
    except RunRecordNotFoundError:
        return None


async def _health_seconds(client: PrefectClient) -> float:
    """How long the server takes to answer ``GET /health`` (no database): its event loop's delay."""
    started = time.perf_counter()
    await client.api_healthcheck()
    return time.perf_counter() - started


def _completed(task_run: TaskRun) -> bool:
    return task_run.state is not None and task_run.state.is_completed()


# --- 1. load ----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    runs: int
    nodes: int
    submit_seconds: float
    submit_errors: Counter[str]
    wall: float
    peak_running: int
    idle_health: list[float]
    health: list[float]
    queued: list[float]
    durations: list[float]
    prefect_states: Counter[str]
    records: Counter[str]
    results_ok: int
    task_runs_completed: int
    task_runs_total: int
    task_runs_lag: float | None
    worker_hwm_before: int
    worker_hwm: int
    worker_rss_after: int
    server_hwm: dict[int, tuple[str, int]]
    cpu: dict[str, float]
    busy_share: float
    server_5xx: Counter[str]
    worker_errors: list[str]


def _cmdline(pid: int) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(p.decode(errors="replace") for p in parts if p)
    return re.sub(r"^\S*python\S*\s+(-m\s+)?", "", text)[:60]


async def load(
    processes: Processes,
    engine: AsyncEngine,
    server: asyncio.subprocess.Process,
    worker: asyncio.subprocess.Process,
    label: str,
    runs: int,
    nodes: int,
    timeout: float,
) -> LoadResult:
    server_pids = [pid for pid in _tree(server.pid) if pid != server.pid] or [server.pid]
    async with get_client() as client:
        idle_health = [await _health_seconds(client) for _ in range(10)]
    hwm_before = _status_kib(worker.pid, "VmHWM")
    server_log_offset = len(processes.log("server", tail=None))
    worker_log_offset = len(processes.log(label, tail=None))
    before = CpuSnapshot.take(worker.pid, server_pids)
    print(f"[workers] load: queueing {runs} runs of {nodes} nodes at once ...", file=sys.stderr)
    started = time.time()
    attempts = await asyncio.gather(
        *(
            remote.submit(engine, NAME, {"who": f"user{i}"}, trigger="bench", triggered_by="bench:load")
            for i in range(runs)
        ),
        return_exceptions=True,
    )
    submit_seconds = time.time() - started
    queued = [a for a in attempts if isinstance(a, remote.RemoteRun)]
    submit_errors = Counter(
        f"{type(a).__name__}: {str(a).splitlines()[0][:150]}" for a in attempts if isinstance(a, BaseException)
    )
    for failure in [a for a in attempts if isinstance(a, BaseException)][:1]:
        print("[workers] load: a submit failed:", file=sys.stderr)
        traceback.print_exception(failure, file=sys.stderr)
    ids = [run.flow_run_id for run in queued]
    deadline = time.monotonic() + timeout
    peak_running = 0
    health: list[float] = []  # the server's answer time to GET /health during the load
    async with get_client() as client:
        while True:
            health.append(await _health_seconds(client))
            flow_runs = await _flow_runs(client, ids)
            done = [f for f in flow_runs if f.state is not None and f.state.is_final()]
            peak_running = max(peak_running, sum(1 for f in flow_runs if f.state is not None and f.state.is_running()))
            if len(done) == len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        after = CpuSnapshot.take(worker.pid, server_pids)
        ended_at = time.time()
        if len(done) < len(ids):
            print(f"[workers] load: only {len(done)} of {runs} runs ended within {timeout:g} s", file=sys.stderr)
        states = Counter(str(f.state.name) if f.state else "None" for f in flow_runs)
        ends = [f.end_time.timestamp() for f in done if f.end_time is not None]
        wall = (max(ends) if ends and len(done) == len(ids) else ended_at) - started
        queue_delays = [(f.start_time - f.created).total_seconds() for f in flow_runs if f.start_time and f.created]
        durations = [(f.end_time - f.start_time).total_seconds() for f in done if f.end_time and f.start_time]
        results = [
            await remote.wait(engine, run, timeout=30) for run in queued if run.flow_run_id in {f.id for f in done}
        ]
        results_ok = sum(1 for r in results if r["status"] == "completed" and f"n{nodes - 1}" in r["nodes"])
        store = RunStore(engine)
        records = [record for run in queued if (record := await _record(store, run.run_id)) is not None]
        record_states = Counter(r.status for r in records)
        if len(records) < len(queued):
            record_states["missing"] = len(queued) - len(records)
        runner_ids = [UUID(r.flow_run_id) for r in records if r.flow_run_id]
        # The recorder writes task-run rows from events, after the runs ended: wait for them.
        expected = runs * nodes
        task_runs: list[TaskRun] = []
        lag: float | None = None
        waited = time.monotonic()
        while time.monotonic() - waited < 120:
            task_runs = await _task_runs(client, runner_ids)
            if sum(1 for t in task_runs if _completed(t)) >= expected:
                lag = max(0.0, time.time() - ended_at)
                break
            await asyncio.sleep(1.0)
    server_hwm = {pid: (_cmdline(pid), _status_kib(pid, "VmHWM")) for pid in server_pids}
    elapsed = after.at - before.at
    busy = (after.machine[0] - before.machine[0]) / max(1e-9, after.machine[1] - before.machine[1])
    cpu = {
        "worker": after.worker - before.worker,
        "server": sum(after.server.values()) - sum(before.server.values()),
        "bench (client)": after.bench - before.bench,
        "PostgreSQL": after.postgres - before.postgres,
    }
    cpu["other"] = max(0.0, (after.machine[0] - before.machine[0]) - sum(cpu.values()))
    cpu["elapsed"] = elapsed
    server_log = processes.log("server", tail=None)[server_log_offset:]
    # The server logs every 500 ("Encountered exception") and 503 ("... retryable exception").
    server_5xx = Counter(
        "503" if m.group(1) else "500"
        for m in re.finditer(r"Encountered (retryable )?exception in request", server_log)
    )
    worker_log = processes.log(label, tail=None)[worker_log_offset:]
    errors = re.compile(r"\bERROR\b|Traceback|Crashed|\b503\b")
    worker_errors = [line for line in worker_log.splitlines() if errors.search(line)]
    return LoadResult(
        runs=runs,
        nodes=nodes,
        submit_seconds=submit_seconds,
        submit_errors=submit_errors,
        wall=wall,
        peak_running=peak_running,
        idle_health=idle_health,
        health=health,
        queued=queue_delays,
        durations=durations,
        prefect_states=states,
        records=record_states,
        results_ok=results_ok,
        task_runs_completed=sum(1 for t in task_runs if _completed(t)),
        task_runs_total=len(task_runs),
        task_runs_lag=lag,
        worker_hwm_before=hwm_before,
        worker_hwm=_status_kib(worker.pid, "VmHWM"),
        worker_rss_after=_status_kib(worker.pid, "VmRSS"),
        server_hwm=server_hwm,
        cpu=cpu,
        busy_share=busy,
        server_5xx=server_5xx,
        worker_errors=worker_errors,
    )


def _ms_stats(values: list[float], p95: bool = False) -> str:
    shown = [statistics.median(values), *([_pct(values, 0.95)] if p95 else []), max(values)]
    return " / ".join(f"{v * 1000:.0f}" for v in shown)


def _short_stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {_pct(values, 0.95):.1f} / {max(values):.1f}"


def _load_rows(result: LoadResult) -> list[tuple[str, str]]:
    runs, nodes = result.runs, result.nodes
    cpu = dict(result.cpu)
    elapsed = cpu.pop("elapsed")
    cores = os.cpu_count() or 1
    lag = result.task_runs_lag
    return [
        ("queueing all runs (concurrent submit) s", f"{result.submit_seconds:.1f}"),
        ("submit failures", str(sum(result.submit_errors.values())) if result.submit_errors else "none"),
        ("wall: first submit -> last run ended s", f"{result.wall:.1f}"),
        ("runs / minute", f"{runs / result.wall * 60:.0f}"),
        ("nodes / second", f"{runs * nodes / result.wall:.0f}"),
        ("runs Running at once (peak, 1 s samples)", str(result.peak_running)),
        ("server GET /health ms, idle (median/max)", _ms_stats(result.idle_health)),
        ("  during the load (median/p95/max)", _ms_stats(result.health, p95=True)),
        ("created -> Running s (median/p95/max)", _short_stats(result.queued)),
        ("Running -> ended s (median/p95/max)", _short_stats(result.durations)),
        ("deployment flow runs", ", ".join(f"{n} {s}" for s, n in result.prefect_states.most_common())),
        ("run records (Switchboard DB)", ", ".join(f"{n} {s}" for s, n in result.records.most_common())),
        ("run results with the last node's output", f"{result.results_ok} of {runs}"),
        ("task runs completed (Prefect)", f"{result.task_runs_completed} of {runs * nodes}"),
        ("all task runs visible, s after last end", f"{lag:.1f}" if lag is not None else "NOT after 120 s"),
        ("worker VmHWM (before the load)", f"{_mib(result.worker_hwm)} ({_mib(result.worker_hwm_before)})"),
        ("server VmHWM (whole life so far)", " + ".join(_mib(hwm) for _, hwm in result.server_hwm.values())),
        ("CPU s: worker (share of one core)", f"{cpu['worker']:.0f} ({cpu['worker'] / elapsed:.0%})"),
        ("CPU s: server (share of one core)", f"{cpu['server']:.0f} ({cpu['server'] / elapsed:.0%})"),
        ("CPU s: PostgreSQL", f"{cpu['PostgreSQL']:.0f}"),
        ("CPU s: bench client", f"{cpu['bench (client)']:.0f}"),
        ("CPU s: other processes", f"{cpu['other']:.0f}"),
        ("machine CPU busy", f"{result.busy_share:.0%} of {cores} x {elapsed:.0f} s"),
        ("server HTTP 5xx", ", ".join(f"{n} x {c}" for c, n in result.server_5xx.items()) or "none"),
        ("worker log: error lines", str(len(result.worker_errors)) if result.worker_errors else "none"),
    ]


def print_load(results: dict[str, LoadResult], alone: list[Trigger] | None) -> None:
    first = next(iter(results.values()))
    print(f"\n1. Load · {first.runs} runs x {first.nodes} nodes queued at once · ONE warm worker")
    table = {label: dict(_load_rows(result)) for label, result in results.items()}
    labels = [row for row, _ in _load_rows(first)]
    width = max(len(label) for label in labels)
    widths = {label: max(len(label), *(len(v) for v in table[label].values())) for label in table}
    print(f"{'':<{width}} | " + " | ".join(f"{label:>{widths[label]}}" for label in table))
    print("-" * (width + sum(w + 3 for w in widths.values())))
    for row in labels:
        print(f"{row:<{width}} | " + " | ".join(f"{table[label][row]:>{widths[label]}}" for label in table))
    names = list(results)
    if len(names) == 2:
        a, b = (results[name] for name in names)
        print(f"throughput {names[0]} / {names[1]}: {b.wall / a.wall:.2f}x")
    if alone:
        duration = statistics.median([t.duration for t in alone])
        end_to_end = statistics.median([t.end_to_end for t in alone])
        rate = 60 / end_to_end
        ratios = ", ".join(f"{name} {r.runs / r.wall * 60 / rate:.2f}x" for name, r in results.items())
        print(
            f"baseline, one run at a time on the idle warm worker (part 2): {duration:.2f} s Running -> ended, "
            f"{end_to_end:.2f} s created -> ended (medians) = {rate:.0f} runs/min; throughput against it: {ratios}"
        )
    for name, result in results.items():
        lost = result.runs - result.records.get("completed", 0)
        missing = result.runs * result.nodes - result.task_runs_completed
        print(f"{name}: lost {lost} run(s) (not completed), {missing} task run(s) missing")
        for error, n in result.submit_errors.items():
            print(f"  submit failed {n} x: {error}")
        for line in result.worker_errors[:10]:
            print(f"  worker log: {line[:200]}")


# --- 2. trigger to first node -----------------------------------------------------------------


@dataclass
class Trigger:
    pickup: float  # created -> deployment flow run Running
    runner: float  # -> runner subflow Running
    first_node: float  # -> first task run started
    total: float  # created -> first task run started
    duration: float  # the deployment flow run, Running -> ended
    end_to_end: float  # the deployment flow run, created -> ended


async def trigger_once(engine: AsyncEngine, client: PrefectClient, index: int) -> Trigger:
    run = await remote.submit(engine, NAME, {"who": f"seq{index}"}, trigger="bench", triggered_by="bench:seq")
    result = await remote.wait(engine, run, timeout=120, poll=0.2)
    if result["status"] != "completed":
        raise RuntimeError(f"run {run.run_id} {result['status']}: {result['error']}")
    record = await RunStore(engine).get(run.run_id)
    assert record.flow_run_id is not None
    runner = await client.read_flow_run(UUID(record.flow_run_id))
    parent = await client.read_flow_run(run.flow_run_id)
    first = await apoll_until(
        lambda: _first_node_start(client, runner.id), timeout=30, interval=0.2, message="the first node's task run"
    )
    assert parent.created and parent.start_time and parent.end_time and runner.start_time and first is not None
    return Trigger(
        pickup=(parent.start_time - parent.created).total_seconds(),
        runner=(runner.start_time - parent.start_time).total_seconds(),
        first_node=(first - runner.start_time).total_seconds(),
        total=(first - parent.created).total_seconds(),
        duration=(parent.end_time - parent.start_time).total_seconds(),
        end_to_end=(parent.end_time - parent.created).total_seconds(),
    )


async def triggers(engine: AsyncEngine, count: int, label: str) -> list[Trigger]:
    found: list[Trigger] = []
    async with get_client() as client:
        await trigger_once(engine, client, -1)  # warm-up, not counted
        for i in range(count):
            found.append(await trigger_once(engine, client, i))
            await asyncio.sleep(0.5)
        print(f"[workers] trigger -> first node: {label} done", file=sys.stderr)
    return found


def print_triggers(results: dict[str, list[Trigger]], nodes: int) -> None:
    count = len(next(iter(results.values())))
    print(f"\n2. Trigger -> first node running · {count} sequential runs (after one warm-up) · {nodes} nodes")
    columns = ("median s", "p95 s", "max s", "pickup", "runner", "1st node")
    header = f"{'worker (idle)':<26} | " + " | ".join(f"{c:>8}" for c in columns)
    print(header)
    print("-" * len(header))
    for label, found in results.items():
        totals = [t.total for t in found]
        values = (
            statistics.median(totals),
            _pct(totals, 0.95),
            max(totals),
            statistics.median([t.pickup for t in found]),
            statistics.median([t.runner for t in found]),
            statistics.median([t.first_node for t in found]),
        )
        print(f"{label:<26} | " + " | ".join(f"{v:>8.2f}" for v in values))
    print("(stages are medians: pickup = created -> deployment flow run Running; runner = -> runner subflow Running;")
    print(" 1st node = -> first task run started)")
    labels = list(results)
    if len(labels) == 2:
        warm, isolated = (results[k] for k in labels)
        med = statistics.median([t.total for t in warm]) / statistics.median([t.total for t in isolated])
        p95 = _pct([t.total for t in warm], 0.95) / _pct([t.total for t in isolated], 0.95)
        print(f"ratio warm/isolated: median {med:.2f}x, p95 {p95:.2f}x")


# --- main -------------------------------------------------------------------------------------


def print_settings(env: dict[str, str]) -> None:
    print("settings (environment of the server and workers; Switchboard's defaults unless set):")
    for key in (*WORKER_DEFAULTS, *SERVER_DEFAULTS):
        if key == "PREFECT_SERVER_ANALYTICS_ENABLED":
            continue
        print(f"  {key}={env.get(key, (WORKER_DEFAULTS | SERVER_DEFAULTS)[key])}")
    for key in ("PREFECT_LOGGING_TO_API_ENABLED", "PREFECT_API_DATABASE_CONNECTION_URL"):
        if key in env:
            print(f"  {key}={env[key]}")
    print("  Prefect server and Switchboard on PostgreSQL (fresh databases), 127.0.0.1")


async def machine_busy(seconds: float = 3.0) -> float:
    """The share of the machine's CPU that was busy over ``seconds`` (before we start anything)."""
    busy0, total0 = _machine_cpu()
    await asyncio.sleep(seconds)
    busy1, total1 = _machine_cpu()
    return (busy1 - busy0) / max(1e-9, total1 - total0)


async def main(args: argparse.Namespace) -> None:
    idle_check = await machine_busy()
    print(f"machine: {os.cpu_count()} cores; {idle_check:.0%} busy before the bench started (other processes)")
    if idle_check > 0.15:
        print("  (not idle: other work on this machine skews every number below)")
    postmaster = _postmaster()
    suffix = uuid.uuid4().hex[:8]
    databases = [f"sb_bench_prefect_{suffix}", f"sb_bench_switchboard_{suffix}"]
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH")}
    if _CHILD_CONSOLE_LEVEL is None:
        env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)
    logs = Path(_HOME) / "logs"
    logs.mkdir(parents=True)
    processes = _processes(env, logs)
    made: list[str] = []
    engine: AsyncEngine | None = None
    definition = workflow(args.nodes)
    switchboard.validate(definition)
    try:
        for name in databases:
            await _postgres_admin(f'CREATE DATABASE "{name}"')
            made.append(name)
        prefect_url, switchboard_url = (f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}" for name in databases)
        env["SWITCHBOARD_DATABASE_URL"] = switchboard_url
        print("[workers] starting switchboard server (Prefect on PostgreSQL) ...", file=sys.stderr)
        server_start = asyncio.ensure_future(processes.start_server(prefect_url, timeout=120))
        engine = create_engine(switchboard_url)
        await upgrade(engine)
        await WorkflowStore(engine).apply(definition, actor="bench")
        server = await server_start
        await _cli(processes, "deploy")
        print_settings(
            env | {"PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/<fresh>"}
        )
        trigger_results: dict[str, list[Trigger]] = {}
        load_results: dict[str, LoadResult] = {}
        limits = [args.limit or args.runs or 4] + ([args.compare_limit] if args.compare_limit else [])
        with temporary_settings({PREFECT_API_URL: processes.api}):
            for number, limit in enumerate(limits if args.runs else limits[:1]):
                label = f"warm-{limit}"
                print(f"[workers] starting a warm worker (--limit {limit}) ...", file=sys.stderr)
                warm = await processes.start_worker(label, "--limit", str(limit), "--grace", "5", timeout=90)
                if args.seq and number == 0:
                    trigger_results["warm (in-process)"] = await triggers(engine, args.seq, "warm")
                if args.runs:
                    found = await load(processes, engine, server, warm, label, args.runs, args.nodes, args.timeout)
                    load_results[f"--limit {limit}"] = found
                await processes.stop(warm)
            if args.seq and not args.no_isolated:
                print("[workers] starting an --isolated worker (--limit 4) ...", file=sys.stderr)
                isolated = await processes.start_worker("isolated", "--isolated", "--limit", "4", timeout=90)
                trigger_results["isolated (process per run)"] = await triggers(engine, args.seq, "isolated")
                await processes.stop(isolated)
        if load_results:
            warm_runs = trigger_results.get("warm (in-process)")
            print_load(load_results, warm_runs)
        if trigger_results:
            print_triggers(trigger_results, args.nodes)
        if _postmaster() != postmaster:
            print("\n! PostgreSQL restarted during the bench: the numbers above are not comparable")
    finally:
        await processes.stop_all()
        if engine is not None:
            await engine.dispose()
        for name in made:
            await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if args.keep_logs:
            print(f"[workers] logs kept in {logs}", file=sys.stderr)
        else:
            shutil.rmtree(_HOME, ignore_errors=True)


def _run(args: argparse.Namespace) -> None:
    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # clean up as on Ctrl-C
        await main(args)

    started = time.monotonic()
    try:
        asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("[workers] interrupted: processes stopped, databases dropped", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"\n(bench took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs in the load test (0: skip it)")
    parser.add_argument("--nodes", type=int, default=20, help="nodes per workflow run")
    parser.add_argument("--limit", type=int, default=0, help="the load worker's --limit (default: --runs)")
    parser.add_argument(
        "--compare-limit", type=int, default=10, help="the same load again on a worker with this --limit (0: skip)"
    )
    parser.add_argument(
        "--seq", type=int, default=20, help="sequential runs per worker for trigger -> first node (0: skip)"
    )
    parser.add_argument("--no-isolated", action="store_true", help="skip the --isolated worker")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the load runs get to end")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (path printed at the end)")
    _run(parser.parse_args())
