"""Real ``switchboard`` processes for tests and benches, and reading the process table (/proc).

:class:`Processes` starts CLI processes (``server``, ``worker``, ``bot``, one-off commands)
with their output in a log file each, waits until a server answers or a worker polls, and
stops them all (SIGTERM, then SIGKILL) at the end. :func:`descendants`, :func:`survivors` and
friends read ``/proc`` for tests about child processes; :func:`free_port` picks a port.
"""

from __future__ import annotations

import asyncio
import re
import resource
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from tests.helpers.polling import apoll_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live, non-zombie process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[1]), fields[19])


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> start time (a reused pid has another)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            parents.setdefault(found[0], []).append(int(entry.name))
            starts[int(entry.name)] = found[1]
    out: dict[int, str] = {}
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            out[child] = starts[child]
            stack.append(child)
    return out


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def survivors(noted: dict[int, str]) -> dict[int, str]:
    """Those of ``noted`` (pid -> start time, from :func:`descendants`) still alive: pid -> command line."""
    alive = {}
    for pid, start in noted.items():
        found = _stat(pid)
        if found is not None and found[1] == start:
            alive[pid] = cmdline(pid)
    return alive


def embedded_prefect_port(pid: int) -> int | None:
    """The port of the embedded Prefect server among ``pid``'s descendants, if it has one."""
    for child in descendants(pid):
        line = cmdline(child)
        if "prefect.server.api.server" in line and (found := re.search(r"--port (\d+)", line)):
            return int(found.group(1))
    return None


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux keeps that across
    ``exec``, so a probe started from a big pytest process would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class ProcessExitedError(RuntimeError):
    """A process a wait depended on exited; the message ends with its log."""


class Processes:
    """The ``switchboard`` CLI processes a test (or bench) started; :meth:`stop_all` stops them.

    Each process's stdout and stderr go to ``<logs>/<label>.log``. ``preexec_fn`` runs in each
    child before it starts (the bench puts children in their own session, dying with it).
    ``python`` runs them (default: this one; a test of plugins gives a virtual environment's).
    """

    api: str = ""

    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        *,
        stop_timeout: float = 20.0,
        preexec_fn: Callable[[], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.env = env
        self.python = python
        self.logs = logs
        self.stop_timeout = stop_timeout
        self.preexec_fn = preexec_fn
        self.started: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, label: str, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        """``switchboard ARGS`` in the background, logging to ``<label>.log``."""
        with (self.logs / f"{label}.log").open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "switchboard.cli",
                *args,
                env=env or self.env,
                stdout=log,
                stderr=log,
                preexec_fn=self.preexec_fn,
            )
        self.started.append((label, process))
        return process

    async def cli(self, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """``switchboard ARGS`` to its end: (exit code, stdout, stderr); killed after ``timeout``."""
        process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "switchboard.cli",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=self.preexec_fn,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        finally:
            if process.returncode is None:  # timed out or interrupted
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    def log(self, label: str, tail: int | None = 3000) -> str:
        """What the process ``label`` logged: its last ``tail`` characters (None: all of it)."""
        path = self.logs / f"{label}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text if tail is None else text[-tail:]

    def check_running(self, label: str, process: asyncio.subprocess.Process) -> None:
        """Raise :class:`ProcessExitedError` with its log if ``process`` has exited."""
        if process.returncode is not None:
            raise ProcessExitedError(f"{label} exited {process.returncode}:\n{self.log(label)}")

    async def stop(self, process: asyncio.subprocess.Process, timeout: float | None = None) -> int | None:
        """SIGTERM (what systemd sends); the exit code, or None if it had to be killed after
        ``timeout`` (default: the ``stop_timeout`` given at construction)."""
        try:
            if process.returncode is not None:
                return process.returncode
            process.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(process.wait(), timeout or self.stop_timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
                return None
        finally:
            self.started = [(label, p) for label, p in self.started if p is not process]

    async def stop_all(self) -> None:
        """Stop every process still running, the last started first."""
        for _, process in reversed(self.started):
            await self.stop(process)

    async def start_server(
        self, database_url: str | None = None, *args: str, timeout: float = 90.0
    ) -> asyncio.subprocess.Process:
        """`switchboard server` (on ``database_url``, else SQLite; ``args`` added to its command
        line); waits for /api/health and points every later process at it (PREFECT_API_URL)."""
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        env = dict(self.env)
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        server = await self.start("server", "server", "--port", str(port), *args, env=env)
        import httpx  # here: the memory probes (tests/security/*_probe.py) import this module too

        async def healthy() -> bool:
            self.check_running("server", server)
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.api}/health", timeout=2)).status_code == 200
            except httpx.HTTPError:
                return False

        await apoll_until(healthy, timeout=timeout, interval=0.2, message="the Prefect server to answer /api/health")
        self.env["PREFECT_API_URL"] = self.api
        return server

    async def start_worker(
        self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> asyncio.subprocess.Process:
        """A `switchboard worker` named ``name``; waits until it polls the pool."""
        worker = await self.start(name, "worker", "--name", name, *args, env=env)

        def polling() -> bool:
            self.check_running(name, worker)
            return f"Worker {name!r} started" in self.log(name, tail=None)

        await apoll_until(polling, timeout=timeout, interval=0.2, message=f"worker {name} to poll the pool")
        return worker
