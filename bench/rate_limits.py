"""What the per-credential rate limit costs: ``python -m bench.rate_limits [--reps N]``.

A workflow of provider nodes (``ai.chat`` against a local OpenAI-compatible fake that answers
at once) runs with each ``SWITCHBOARD_RATE_LIMITS`` backend: ``off`` (the baseline), ``local``
(a token bucket in the process) and ``prefect`` (one global-concurrency acquire per node
attempt), in one process against one Prefect test server on SQLite. Two shapes: 20 sequential
nodes, and one ``for_each`` of 20 items at concurrency 20, both under the default budget
(50/s, so no node should have to wait). Prints medians and ratios to ``off``; never fails.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("SWITCHBOARD_HOME", tempfile.mkdtemp(prefix="switchboard-bench-"))
for _var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH"):
    os.environ.pop(_var, None)
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

import switchboard  # noqa: E402, I001 - must come before prefect

import argparse  # noqa: E402
import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tests.fakes.http import FakeHTTP  # noqa: E402
from tests.fakes.openai import FakeOpenAI, completion  # noqa: E402

N = 20


def sequential(credential: str) -> dict[str, Any]:
    nodes = [{"id": "a0", "type": "ai.chat", "credential": credential, "params": {"prompt": "go"}}]
    for i in range(1, N):
        nodes.append(
            {
                "id": f"a{i}",
                "type": "ai.chat",
                "credential": credential,
                "params": {"prompt": f"{{{{ nodes.a{i - 1}.output.text }}}}"},
            }
        )
    return {"name": "bench-rate-seq", "nodes": nodes}


def fan_out(credential: str) -> dict[str, Any]:
    return {
        "name": "bench-rate-fan",
        "nodes": [
            {
                "id": "ask",
                "type": "ai.chat",
                "credential": credential,
                "for_each": list(range(N)),
                "concurrency": N,
                "params": {"prompt": "{{ item }}"},
            }
        ],
    }


BACKENDS = ("off", "local", "prefect")


async def timed(definition: dict[str, Any], resolver: Any, backend: str) -> float:
    os.environ["SWITCHBOARD_RATE_LIMITS"] = backend
    started = time.perf_counter()
    result = await switchboard.arun(definition, credential_resolver=resolver, record=False)
    assert result.status == "completed", result.error
    return time.perf_counter() - started


async def main(reps: int) -> None:
    fake = FakeHTTP().start()
    ai = FakeOpenAI(fake)
    ai.reply(completion("ok"))

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": "sk-bench", "base_url": ai.base_url}

    shapes = {"20 sequential ai.chat": sequential, "for_each of 20 ai.chat": fan_out}
    rows = []
    for label, build in shapes.items():
        definition = build("bench-llm")
        for backend in BACKENDS:
            await timed(definition, resolve, backend)  # warm-up (creates the Prefect limit once)
        times: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
        for _ in range(reps):
            for backend in BACKENDS:
                times[backend].append(await timed(definition, resolve, backend))
        rows.append((label, {backend: statistics.median(times[backend]) for backend in BACKENDS}))
    fake.stop()
    print(f"rate-limit cost · {reps} reps · medians · Prefect test server on SQLite")
    print(f"{'shape':<24} | {'off s':>6} | {'local s':>7} | {'local/off':>9} | {'prefect s':>9} | {'prefect/off':>11}")
    print("-" * 82)
    for label, median in rows:
        off, local, prefect = median["off"], median["local"], median["prefect"]
        ratios = f"{local / off:>8.2f}x | {prefect:>9.3f} | {prefect / off:>10.2f}x"
        print(f"{label:<24} | {off:>6.3f} | {local:>7.3f} | {ratios}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print("[rate-limits] starting a Prefect test server ...", file=sys.stderr)
    with prefect_test_harness(server_startup_timeout=120):
        asyncio.run(main(args.reps))
