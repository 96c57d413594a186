"""Load workflow files under a memory ceiling and report each outcome as one JSON line.

Run as ``python -m tests.security.loader_probe LIST.json MEMORY_BYTES``: ``LIST.json`` holds the
file paths (a ``.py`` file instead builds a ``definition`` dict to load). The address space is
capped first (RLIMIT_AS), so a file that makes the loader
allocate gigabytes ends in a MemoryError here instead of swapping the machine. Each file goes
through ``flows.plan.build_plan`` and through the ``validate`` command in-process (typer's
runner), with a wall-clock alarm that stops a hang. Outcomes:

``valid``, ``DefinitionError`` (both fine), or the name of any other exception, ``timeout``, or
``cli-exit-<n>`` when the command exits with anything but 0 or 2 or prints a traceback.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers.processes import peak_rss_kib

#: Stops one file that hangs (seconds of wall-clock time; generous: the machine is shared).
HANG_SECONDS = 30


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _probe(path: Path) -> dict[str, Any]:
    from typer.testing import CliRunner

    from flows.model import DefinitionError
    from flows.plan import build_plan
    from switchboard.cli import app

    report: dict[str, Any] = {"path": str(path)}
    source: Any = path
    if path.suffix == ".py":  # a script that builds a ``definition`` dict (the Python API's input)
        namespace: dict[str, Any] = {}
        exec(path.read_text(), namespace)
        source = namespace["definition"]
    started_cpu, started = time.process_time(), time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        try:
            build_plan(source)
            report["outcome"] = "valid"
        except DefinitionError as exc:
            report["outcome"] = "DefinitionError"
            report["problems"] = [str(problem)[:300] for problem in exc.problems]
        except BaseException as exc:  # every other exception is the finding
            report["outcome"] = type(exc).__name__ if not isinstance(exc, _Hang) else "timeout"
            report["error"] = str(exc)[:300]
        report["cpu_seconds"] = time.process_time() - started_cpu
        report["seconds"] = time.perf_counter() - started
        if report["outcome"] in ("valid", "DefinitionError") and source is path:
            result = CliRunner().invoke(app, ["validate", str(path)])
            output = result.output  # stdout and stderr, as a terminal shows them
            if result.exit_code not in (0, 2) or "Traceback" in output:
                report["outcome"] = f"cli-exit-{result.exit_code}"
                report["error"] = repr(result.exception)[:300]
            elif (result.exit_code == 0) != (report["outcome"] == "valid"):
                report["outcome"] = f"cli-exit-{result.exit_code}-disagrees"
    except _Hang:
        report["outcome"] = "timeout"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return report


def main() -> None:
    paths = [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())]
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    sys.setrecursionlimit(1000)  # the interpreter's default: what the CLI runs with
    for path in paths:
        report = _probe(path)
        report["max_rss_kib"] = peak_rss_kib()
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
