"""Per-node overhead benchmark: ``python -m bench.overhead [--reps N] [--pause S]``.

Three light-node shapes (:mod:`bench.shapes`): 40 sequential nodes, 40 independent nodes and
a 10x10 layered DAG, each executed three ways in one process against one Prefect server:

* **asyncio** — the floor: the same plan walked by a minimal asyncio scheduler that renders
  each node's params, validates them and calls the registered node function (no Prefect);
* **prefect** — the baseline: a hand-written async ``@flow`` awaiting a trivial async ``@task``
  per node (chain: ``await t(prev)``; fan-out / layers: ``asyncio.gather`` per layer);
* **switchboard** — ``await switchboard.arun(definition)``.

The server is ``prefect_test_harness`` (a subprocess server on a temporary SQLite database),
so nothing is written under ``~/.prefect``. Every variant is warmed up once, then the variants
take turns for ``--reps`` repetitions. SQLite sometimes answers 503 "database is locked" and
the client backs off for ~2 s, so medians can jump: the best run is the fairer overhead number.
Prints tables; never fails. ``--profile SHAPE`` instead profiles both Prefect variants and
prints the functions whose own time Switchboard adds. Prefect settings come from
``switchboard/bootstrap.py`` unless set in the environment, e.g.
``PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL=1 python -m bench.overhead``.
"""

from __future__ import annotations

import os
import sys
import tempfile

# Before switchboard (which sets Prefect defaults) and before prefect is imported.
os.environ.setdefault("SWITCHBOARD_HOME", tempfile.mkdtemp(prefix="switchboard-bench-"))
for _var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_var, None)
# Task and flow run logs still go to the API (as in production); only the console is quiet.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import switchboard  # noqa: E402, I001 - must come before prefect

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import prefect  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from bench import shapes  # noqa: E402
from bench.compile import git_revision  # noqa: E402
from flows.plan import PlannedNode, build_plan  # noqa: E402
from nodes.context import NodeContext, RunInfo  # noqa: E402

TARGET_RATIO = 1.25

Runner = Callable[[], Awaitable[None]]


def progress(message: str) -> None:
    print(f"[overhead {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- (a) the floor: the same plan, plain asyncio --------------------------------------------

_floor_logger = logging.getLogger("bench.floor")
#: One client for every floor run: creating one loads the CA bundle (~20 ms), which is not node work.
_floor_http: httpx.AsyncClient | None = None


async def run_plain_asyncio(definition: dict[str, Any]) -> None:
    """Plan, then run every node as a coroutine once its upstream nodes are done."""
    plan = build_plan(definition)
    inputs = plan.workflow.resolve_inputs({})
    run = RunInfo(id="bench", workflow=plan.workflow.name, version=None, trigger="bench")
    outputs: dict[str, dict[str, Any]] = {}
    scope = {"inputs": inputs, "nodes": outputs, "run": run.as_template_value(), "env": {}, "item": None, "index": None}
    started: dict[str, asyncio.Task[None]] = {}
    global _floor_http
    http = _floor_http = _floor_http or httpx.AsyncClient()

    async def one(planned: PlannedNode) -> None:
        if planned.edges:
            await asyncio.gather(*(started[s] for s in planned.upstream))
        params = planned.spec.params_model.model_validate(planned.params.render(scope))
        ctx = NodeContext(node_id=planned.id, run=run, http=http, logger=_floor_logger)
        output = await planned.spec.invoke(ctx, params)
        outputs[planned.id] = {"output": output, "status": "completed"}

    for node_id in plan.order:
        started[node_id] = asyncio.ensure_future(one(plan.nodes[node_id]))
    await asyncio.gather(*started.values())
    assert len(outputs) == len(plan.order)


# --- (b) the baseline: a hand-written Prefect flow ------------------------------------------


@task
async def light(value: str, i: int) -> str:
    """Trivial work, like a light node: build a short string."""
    return f"{value[:16]}+{i}"


@flow
async def handwritten(layers: list[list[str]]) -> int:
    """One task per node; a layer of one is awaited directly, wider layers are gathered."""
    previous = ["start"]
    done = 0
    for layer in layers:
        if len(layer) == 1:
            previous = [await light(previous[0], done)]
        else:
            previous = list(await asyncio.gather(*(light(previous[i % len(previous)], i) for i in range(len(layer)))))
        done += len(layer)
    return done


# --- (c) Switchboard ------------------------------------------------------------------------


async def run_switchboard(definition: dict[str, Any]) -> None:
    result = await switchboard.arun(definition)
    if result.status != "completed":
        raise RuntimeError(f"benchmark workflow {definition['name']} ended {result.status}: {result.error}")


# --- measuring ------------------------------------------------------------------------------

VARIANTS = ("asyncio", "prefect", "switchboard")


@dataclass
class Sample:
    wall: float
    client_cpu: float
    server_cpu: float | None


@dataclass
class Shape:
    name: str
    definition: dict[str, Any]
    layers: shapes.Layers
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def nodes(self) -> int:
        return len(self.definition["nodes"])

    def runner(self, variant: str) -> Runner:
        if variant == "asyncio":
            return lambda: run_plain_asyncio(self.definition)
        if variant == "prefect":

            async def prefect_run() -> None:
                assert await handwritten(self.layers) == self.nodes

            return prefect_run
        return lambda: run_switchboard(self.definition)


def server_pid() -> int | None:
    """The pid of the harness's API server subprocess (None if it cannot be found)."""
    try:
        from prefect.server.api.server import SubprocessASGIServer

        process = getattr(SubprocessASGIServer._instances.get(None), "server_process", None)
    except Exception:
        return None
    return process.pid if process is not None else None


def process_cpu(pid: int | None) -> float | None:
    """User + system CPU seconds of a process, from ``/proc`` (Linux; None elsewhere)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def timed(runner: Runner, pause: float, pid: int | None) -> Sample:
    """One run: wall time, this process's CPU (all threads) and the server's CPU.

    The server's CPU is counted until the end of the pause after the run, so the work it does
    asynchronously for the run (task-run recorder, events, logs) is mostly included.
    """
    server_before = process_cpu(pid)
    cpu_before = time.process_time()
    started = time.perf_counter()
    await runner()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    await asyncio.sleep(pause)
    server_after = process_cpu(pid)
    server = server_after - server_before if server_before is not None and server_after is not None else None
    return Sample(wall, cpu, server)


async def measure(shape_list: list[Shape], reps: int, pause: float) -> None:
    pid = server_pid()
    for shape in shape_list:
        progress(f"{shape.name}: warm-up")
        for variant in VARIANTS:
            await shape.runner(variant)()
            await asyncio.sleep(pause)
        for rep in range(reps):
            progress(f"{shape.name}: rep {rep + 1}/{reps}")
            for variant in VARIANTS:  # variants take turns, so drift and stalls spread evenly
                shape.samples.setdefault(variant, []).append(await timed(shape.runner(variant), pause, pid))


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ms(value: float | None, per: int, width: int) -> str:
    return f"{value * 1000 / per:>{width}.2f}" if value is not None else f"{'n/a':>{width}}"


def report(shape_list: list[Shape], reps: int) -> None:
    print()
    print(
        f"Wall time of a whole run (flow run, planning, every node, final state); median and best of {reps} "
        "after one warm-up."
    )
    print(
        "CPU columns (median, ms per node): client = this process, all threads; server = the API server "
        "subprocess, from run start to the end of the pause after it. They do not include lock waits."
    )
    header = (
        f"{'shape':<13} | {'variant':<11} | {'median ms':>9} | {'best ms':>8} | {'median ms/node':>14} | "
        f"{'best ms/node':>12} | {'client CPU':>10} | {'server CPU':>10} | {'× prefect median':>16} | "
        f"{'× prefect best':>14}"
    )
    print(header)
    print("-" * len(header))
    for shape in shape_list:
        base = [s.wall for s in shape.samples["prefect"]]
        for variant in VARIANTS:
            samples = shape.samples[variant]
            walls = [s.wall for s in samples]
            median, best = statistics.median(walls), min(walls)
            print(
                f"{shape.name:<13} | {variant:<11} | {median * 1000:>9.1f} | {best * 1000:>8.1f} | "
                f"{median * 1000 / shape.nodes:>14.2f} | {best * 1000 / shape.nodes:>12.2f} | "
                f"{_ms(_median([s.client_cpu for s in samples]), shape.nodes, 10)} | "
                f"{_ms(_median([s.server_cpu for s in samples]), shape.nodes, 10)} | "
                f"{median / statistics.median(base):>15.2f}x | {best / min(base):>13.2f}x"
            )
        print("-" * len(header))
    print()
    print(f"Switchboard / hand-written Prefect (target <= {TARGET_RATIO:g}x; best run = the fairer overhead number):")
    for shape in shape_list:
        sb, pf = shape.samples["switchboard"], shape.samples["prefect"]
        best_sb, best_pf = min(s.wall for s in sb), min(s.wall for s in pf)
        median_ratio = statistics.median(s.wall for s in sb) / statistics.median(s.wall for s in pf)
        cpu_sb, cpu_pf = _median([s.client_cpu for s in sb]), _median([s.client_cpu for s in pf])
        cpu_ratio = f"{cpu_sb / cpu_pf:.2f}x" if cpu_sb and cpu_pf else "n/a"
        verdict = "met" if best_sb / best_pf <= TARGET_RATIO else "MISSED"
        print(
            f"  {shape.name:<13}  best {best_sb / best_pf:.2f}x ({verdict}) · median {median_ratio:.2f}x · "
            f"client CPU {cpu_ratio} · Switchboard adds {(best_sb - best_pf) * 1000 / shape.nodes:+.2f} ms/node "
            f"(best), {best_sb * 1000 / shape.nodes:.2f} ms/node in all"
        )


def environment() -> None:
    from prefect.settings import PREFECT_API_URL

    print(
        f"Python {platform.python_version()} · Prefect {prefect.__version__} · CPUs {os.cpu_count()} · "
        f"Switchboard {switchboard.__version__} at commit {git_revision()}"
    )
    print(f"Platform: {platform.platform()}")
    print(
        f"Server: prefect_test_harness subprocess at {PREFECT_API_URL.value()} — SQLite (503 'database is locked' "
        "stalls cost ~2 s now and then: read the best column as the overhead)"
    )
    print("Logging: Prefect defaults (INFO, logs shipped to the API); console handler at WARNING")
    flush = os.environ.get("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL", "default")
    idle = idle_server_cpu()
    busy = " (busy loop: Prefect 3.9 sleeps int(flush_interval) s, so 0.5 means 0)" if (idle or 0) > 0.5 else ""
    shown = f"{idle:.0%} of a core" if idle is not None else "n/a"
    print(f"Task-run recorder flush interval: {flush} · idle server CPU: {shown}{busy}")


def idle_server_cpu(seconds: float = 2.0) -> float | None:
    """Share of one core the API server uses while nothing runs."""
    pid = server_pid()
    before = process_cpu(pid)
    time.sleep(seconds)
    after = process_cpu(pid)
    return (after - before) / seconds if before is not None and after is not None else None


def _own_times(stats: pstats.Stats) -> dict[str, tuple[float, int]]:
    """Own time and call count per function, keyed by a short ``file:line(name)``."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out: dict[str, tuple[float, int]] = {}
    for (filename, line, name), (_, calls, own, _, _) in raw.items():
        short = filename.split("site-packages/")[-1].split("/lib/python3.11/")[-1].replace(os.getcwd() + "/", "")
        out[f"{short}:{line}({name})"] = (own, calls)
    return out


async def profile(shape: Shape, runs: int, top: int) -> None:
    """cProfile ``runs`` runs of the hand-written flow and of Switchboard (after warm-ups).

    Prints each variant's wall times, then the functions whose *own* time Switchboard adds
    over the hand-written flow (ms per run) and Switchboard's cumulative view. Own time is the
    reliable column with coroutines; cumulative times of ``async`` functions include awaits.
    """
    stats: dict[str, pstats.Stats] = {}
    for variant in ("prefect", "switchboard"):
        for _ in range(2):
            await shape.runner(variant)()
        profiler = cProfile.Profile()
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            profiler.enable()
            await shape.runner(variant)()
            profiler.disable()
            walls.append(time.perf_counter() - started)
            await asyncio.sleep(0.5)
        print(f"{variant}: wall ms under the profiler: {', '.join(f'{w * 1000:.0f}' for w in walls)}")
        stats[variant] = pstats.Stats(profiler, stream=sys.stdout)
    base, sb = _own_times(stats["prefect"]), _own_times(stats["switchboard"])
    zero = (0.0, 0)
    extra = sorted(set(base) | set(sb), key=lambda k: base.get(k, zero)[0] - sb.get(k, zero)[0])
    print(f"\n=== {shape.name}: own time Switchboard adds over the hand-written flow (ms per run) ===")
    print(f"{'ms/run':>8} {'calls pf':>9} {'calls sb':>9}  function")
    for key in extra[:top]:
        added = (sb.get(key, zero)[0] - base.get(key, zero)[0]) * 1000 / runs
        print(f"{added:>8.1f} {base.get(key, zero)[1]:>9} {sb.get(key, zero)[1]:>9}  {key}")
    print(f"\n=== {shape.name}: Switchboard, cumulative (async functions include their awaits) ===")
    stats["switchboard"].sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per variant (default 5)")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds after each run (server settles)")
    parser.add_argument("--shapes", default=",".join(shapes.OVERHEAD_SHAPES), help="comma-separated shape names")
    parser.add_argument("--profile", metavar="SHAPE", help="print a cProfile of one shape instead of the tables")
    parser.add_argument("--profile-runs", type=int, default=5)
    args = parser.parse_args(argv)

    names = [args.profile] if args.profile else [s.strip() for s in args.shapes.split(",")]
    shape_list = []
    for name in names:
        definition, layers = shapes.OVERHEAD_SHAPES[name]()
        shape_list.append(Shape(name, definition, layers))

    started = time.perf_counter()
    progress("starting the Prefect test server (SQLite) ...")
    with prefect_test_harness(server_startup_timeout=120):
        progress(f"server up after {time.perf_counter() - started:.1f} s")
        environment()
        if args.profile:
            asyncio.run(profile(shape_list[0], args.profile_runs, 30))
            return
        asyncio.run(measure(shape_list, args.reps, args.pause))
        report(shape_list, args.reps)
    progress(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
