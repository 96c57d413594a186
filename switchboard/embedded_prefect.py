"""The embedded Prefect server: one per process without a Prefect API URL, started early and
waited for without blocking.

With no ``PREFECT_API_URL`` Prefect starts a local ("ephemeral") API server by itself the first
time a client is needed — synchronously, so its start-up (4-6 s migrated, ~12 s on a fresh
home, longer on a busy machine) blocked whichever event loop asked first (the bot stopped
acknowledging Slack for that long), and as a plain child process, so a parent that did not exit
through ``atexit`` (a SIGTERMed bot: uvicorn re-raises the signal after its graceful shutdown)
left it running, one more server per restart.

Switchboard starts that same server itself, as early as a process knows it needs Prefect
(:func:`start`: the bot at start-up; :func:`ready` before a run or a Prefect query), as a child
that dies with this process (:mod:`switchboard.child_processes`); waits for it with async
polling; and hands it to Prefect as *the* ephemeral server of the process (Prefect's
``SubprocessASGIServer`` singleton), so every Prefect client here — ours and Prefect's own event
and log workers — talks to it and none starts another. ``PREFECT_API_URL`` stays unset: what
asks whether a Prefect server is *configured* (remote execution, the rate-limit backend,
doctor) still hears "no".
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from subprocess import DEVNULL, Popen
from typing import TYPE_CHECKING, Literal

import httpx

from switchboard import child_processes

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

Status = Literal["configured", "stopped", "starting", "ready", "failed"]

#: uvicorn's exit code when its port is taken (another process won the race for it).
_PORT_IN_USE = 3
_PORT_ATTEMPTS = 5
_POLL_SECONDS = 0.1


class EmbeddedPrefectError(RuntimeError):
    """The embedded Prefect server did not start; the message says why."""


@dataclass
class _Server:
    process: Popen[bytes] | None = None
    port: int | None = None
    ready: bool = False
    error: str | None = None
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_SERVER = _Server()
_stop_registered = False


def configured_api_url() -> str | None:
    """The Prefect API this process was pointed at (``PREFECT_API_URL``, a test harness), if any."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def status() -> Status:
    """Where the embedded server is: not needed (a configured API), stopped, starting, ready, failed."""
    if configured_api_url():
        return "configured"
    if _SERVER.error is not None:
        return "failed"
    if _SERVER.process is None or _SERVER.process.poll() is not None:
        return "stopped"
    return "ready" if _SERVER.ready else "starting"


def error() -> str | None:
    """Why the embedded server failed to start (None when it did not fail)."""
    return _SERVER.error


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command(port: int) -> tuple[list[str], dict[str, str]]:
    """Prefect's own ephemeral-server command and environment (prefect.server.api.server)."""
    import prefect
    from prefect.settings import get_current_settings

    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(prefect.__module_path__.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    return argv, env


def start() -> None:
    """Start the embedded server unless a Prefect API is configured or it runs already.

    Returns at once (the child is forked, not waited for); :func:`ready` waits.
    """
    global _stop_registered
    if configured_api_url():
        return
    with _SERVER.lock:
        if _SERVER.process is not None and _SERVER.process.poll() is None:
            return
        from prefect.server.api.server import SubprocessASGIServer

        prefect_server = SubprocessASGIServer()
        started_by_prefect = prefect_server.server_process
        if prefect_server.running and started_by_prefect is not None and started_by_prefect.poll() is None:
            # Prefect started one itself before we were asked (a client made too early): use it
            # rather than start a second one; Prefect's own atexit hook stops it.
            _SERVER.process, _SERVER.port = started_by_prefect, prefect_server.port
            return
        _SERVER.port = _free_port()
        argv, env = _command(_SERVER.port)
        # The server logs errors only; like Prefect's own, they go to this process's stderr.
        _SERVER.process = child_processes.spawn(argv, env=env, stdout=DEVNULL)
        _SERVER.ready, _SERVER.error = False, None
        _SERVER.attempts += 1
        # Prefect's ephemeral mode asks this singleton for its server; it is ours now.
        prefect_server.port = _SERVER.port
        prefect_server.server_process = _SERVER.process
        prefect_server.running = True
        if not _stop_registered:
            atexit.register(stop)  # registered early, so it runs after Prefect's own exit flushes
            _stop_registered = True


async def ready(timeout: float | None = None) -> None:
    """Start the embedded server if needed and wait (asynchronously) until it answers.

    A no-op with a configured Prefect API. Raises :class:`EmbeddedPrefectError` if the server
    exits or does not answer within ``timeout`` (default:
    ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``).
    """
    if configured_api_url() or (_SERVER.ready and _SERVER.process is not None and _SERVER.process.poll() is None):
        return
    if timeout is None:
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        timeout = float(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
    start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            process = _SERVER.process
            assert process is not None
            code = process.poll()
            if code is not None:
                if code == _PORT_IN_USE and _SERVER.attempts < _PORT_ATTEMPTS:
                    start()  # the port went to someone else between probe and bind
                    continue
                _SERVER.error = f"the embedded Prefect server exited with code {code} (its errors are above)"
                raise EmbeddedPrefectError(_SERVER.error)
            try:
                response = await client.get(f"http://127.0.0.1:{_SERVER.port}/api/health")
                if response.status_code == 200:
                    _SERVER.ready, _SERVER.attempts = True, 0
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            if loop.time() > deadline:
                _SERVER.error = (
                    f"the embedded Prefect server did not answer within {timeout:g} s "
                    "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a server)"
                )
                raise EmbeddedPrefectError(_SERVER.error)
            await asyncio.sleep(_POLL_SECONDS)


def stop() -> None:
    """Stop the embedded server (at exit; harmless when it is not running)."""
    process = _SERVER.process
    if process is None:
        return
    child_processes.stop(process)
    _SERVER.ready = False
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().stop()  # forget it in Prefect too (it reaps nothing: already stopped)


@asynccontextmanager
async def client() -> AsyncIterator[PrefectClient]:
    """A Prefect client, once the embedded server (if this process needs one) answers.

    Switchboard's code asks for Prefect clients here, never with ``get_client()`` directly:
    that would make Prefect start its own server, blocking the event loop.
    """
    from prefect.client.orchestration import get_client

    await ready()
    async with get_client() as prefect:
        yield prefect
