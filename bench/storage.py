"""Storage benchmark: rows Switchboard writes per run and per node, and `apply` + `run NAME`
latency on Postgres against SQLite.

    python -m bench.storage [--reps 5] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Not a test: it prints tables. Each backend gets a fresh database (a temporary SQLite file; a
new Postgres database, dropped afterwards); one Prefect test server serves every run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

os.environ.setdefault("SWITCHBOARD_HOME", tempfile.mkdtemp(prefix="switchboard-bench-"))

import switchboard  # noqa: I001 - must come before prefect
import asyncpg
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import func, select

from storage.db import create_engine
from storage.migrate import upgrade
from storage.models import AuditRow, MemoryMessageRow, RunRow, StateRow, WorkflowVersionRow

TABLES = {
    "runs": RunRow,
    "audit_log": AuditRow,
    "workflow_versions": WorkflowVersionRow,
    "kv_state": StateRow,
    "memory": MemoryMessageRow,
}


def chain(n: int, name: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "n0", "type": "core.set", "params": {"values": {"text": "start"}}}]
    for i in range(1, n):
        nodes.append(
            {"id": f"n{i}", "type": "text.template", "params": {"template": f"{{{{ nodes.n{i - 1}.output.text }}}}"}}
        )
    return {"name": name, "nodes": nodes}


async def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return {
                name: int((await connection.execute(select(func.count()).select_from(model))).scalar_one())
                for name, model in TABLES.items()
            }
    finally:
        await engine.dispose()


async def measure(url: str, reps: int) -> dict[str, Any]:
    os.environ["SWITCHBOARD_DATABASE_URL"] = url
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    rows: dict[int, float] = {}
    for size in (10, 100):
        definition = chain(size, f"rows-{size}")
        await switchboard.arun(definition)  # warm-up (first run creates nothing extra)
        before = await row_counts(url)
        for _ in range(3):
            await switchboard.arun(definition)
        after = await row_counts(url)
        rows[size] = sum(after.values()) - sum(before.values())
    apply_times, run_times = [], []
    for i in range(reps):
        t0 = time.perf_counter()
        async with switchboard.default_client() as client:  # a CLI command: one client, its own engine
            await client.workflows.apply(chain(10, "latency") | {"description": f"rep {i}"})
        t1 = time.perf_counter()
        async with switchboard.default_client() as client:
            stored = await client.workflows.get("latency")
        result = await switchboard.arun(stored.definition, version=stored.version, trigger="cli")
        assert result.status == "completed", result.error
        t2 = time.perf_counter()
        apply_times.append(t1 - t0)
        run_times.append(t2 - t1)
    return {
        "rows per run (10 nodes)": rows[10] / 3,
        "rows per run (100 nodes)": rows[100] / 3,
        "apply ms (median)": statistics.median(apply_times) * 1000,
        "run NAME ms (median, 10 nodes)": statistics.median(run_times) * 1000,
    }


async def main(reps: int, admin_dsn: str) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='sb-bench-')}/bench.db"
    name = f"sb_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        print("[storage] sqlite ...", file=sys.stderr)
        lite = await measure(sqlite_url, reps)
        print("[storage] postgres ...", file=sys.stderr)
        pg = await measure(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", reps)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"storage benchmark · {reps} reps · rows counted over 3 runs after a warm-up")
    print(f"{'metric':<32} | {'SQLite':>10} | {'Postgres':>10} | {'PG / SQLite':>11}")
    print("-" * 72)
    for metric, value in lite.items():
        other = pg[metric]
        ratio = f"{other / value:.2f}x" if value else "-"
        print(f"{metric:<32} | {value:>10.1f} | {other:>10.1f} | {ratio:>11}")
    print(
        "\nrows per node: (rows per run at 100 nodes - at 10 nodes) / 90 = "
        f"{(lite['rows per run (100 nodes)'] - lite['rows per run (10 nodes)']) / 90:.2f} (target 0)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="an admin DSN")
    args = parser.parse_args()
    with prefect_test_harness(server_startup_timeout=120):
        asyncio.run(main(args.reps, args.postgres))
