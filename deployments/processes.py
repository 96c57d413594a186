"""Start and supervise Prefect's server and workers: ``switchboard server`` / ``switchboard worker``.

The server (and ``switchboard worker --isolated``) runs Prefect's CLI (``prefect server start``,
``prefect worker start``) as a child process
with Switchboard's environment defaults, in a session of its own, and forward SIGTERM and
SIGINT to it exactly once, so a Ctrl-C in a terminal or a ``systemctl stop`` shuts it down
cleanly. Every default is only a default: a value the operator set in the environment wins.

Settings and why (measured on 2 cores, Prefect 3.9):

* server: task-run rows are recorded in batches of 100 every second (the defaults let a
  500-task flow's rows trickle in for ~12 s); the flush interval stays a whole number because
  Prefect sleeps ``int(interval)`` between flushes, so 0.5 would busy-loop the server.
* worker: it asks for runs every second (Prefect's default is 10 s), takes scheduled runs
  10 s ahead (a scheduled run is held at Running until its time, so any start-up is paid
  before it), and sends a heartbeat every 10 s (a dead worker is noticed after three missed
  ones). ``switchboard worker`` runs the warm worker (:mod:`deployments.warm_worker`) in its
  own process with these settings; ``--isolated`` runs Prefect's process worker through
  :func:`supervise`. Measured, server on Postgres, 2 cores (``python -m bench.workers``),
  flow-run creation -> first node running:

  =====================================  ==========  ==========
  worker                                 median      p95
  =====================================  ==========  ==========
  warm (in-process, 1 s polling)         0.9 s       1.6 s
  isolated (process per run, 1 s)        5.2 s       5.8 s
  isolated, Prefect's 10 s polling       ~11 s       --
  =====================================  ==========  ==========
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from switchboard.child_processes import own_session_dying_with_parent
from switchboard.work_pool import WORK_POOL

SERVER_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}

WORKER_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "10",
    # A dead worker is noticed after three missed heartbeats: 30 s instead of 90 s.
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "10",
}

#: How long a child has to exit after the forwarded signal before it is killed.
STOP_GRACE_SECONDS = 30.0


class WorkerConfigError(RuntimeError):
    """The worker cannot start as configured (no API URL, API unreachable)."""


@dataclass(frozen=True)
class Command:
    """A Prefect CLI invocation and the environment it runs in."""

    argv: list[str]
    env: dict[str, str]


def _prefect_argv(*args: str) -> list[str]:
    # The Prefect of this interpreter, whatever is first on PATH.
    return [sys.executable, "-m", "prefect", *args]


def _with_defaults(environ: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    for key, value in defaults.items():
        env.setdefault(key, value)
    return env


def redact_url(url: str) -> str:
    """``postgresql+asyncpg://user:***@host/db``: a URL safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def server_database(environ: Mapping[str, str]) -> str:
    """Where the server keeps its data: the configured URL (redacted) or the SQLite default."""
    url = environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if url:
        return redact_url(url)
    home = environ.get("PREFECT_HOME") or os.path.expanduser("~/.prefect")
    return f"sqlite: {os.path.join(home, 'prefect.db')}"


def api_url(host: str, port: int) -> str:
    """The API URL clients use to reach a server listening on ``host``."""
    reachable = host
    if host in ("0.0.0.0", "::", ""):
        import socket

        reachable = socket.getfqdn() or "127.0.0.1"
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}/api"


#: Where the UI finds the API unless told otherwise: on the origin that served the UI. Prefect
#: answers ``/ui-settings`` from its settings (PREFECT_API_URL, else 127.0.0.1:4200), not from
#: ``--host``/``--port``, so a server on any other address served a UI that could not reach
#: its API. A relative URL is right for every address a browser may use (a port, 0.0.0.0 and
#: a host name, a reverse proxy that forwards ``/api`` with the UI); both of Prefect 3.9's UIs
#: accept it (tests/deployments/test_server_ui.py renders a flow-run page in Chromium).
SAME_ORIGIN_UI_API_URL = "/api"
_UI_API_URL_VARIABLES = ("PREFECT_UI_API_URL", "PREFECT_SERVER_UI_API_URL")


def server_command(
    host: str, port: int, environ: Mapping[str, str] | None = None, *, ui_api_url: str | None = None
) -> Command:
    """``prefect server start`` (UI included) on the configured Prefect database.

    ``ui_api_url``: where browsers reach the API (a server behind a proxy that moves the API);
    default: PREFECT_UI_API_URL if the operator set it, else the UI's own origin.
    """
    env = _with_defaults(os.environ if environ is None else environ, SERVER_DEFAULTS)
    if ui_api_url:
        for variable in _UI_API_URL_VARIABLES:
            env.pop(variable, None)
        env["PREFECT_UI_API_URL"] = ui_api_url
    elif not any(env.get(variable) for variable in _UI_API_URL_VARIABLES):
        env["PREFECT_UI_API_URL"] = SAME_ORIGIN_UI_API_URL
    return Command(_prefect_argv("server", "start", "--host", host, "--port", str(port)), env)


def worker_command(limit: int, name: str | None = None, environ: Mapping[str, str] | None = None) -> Command:
    """``prefect worker start`` on the Switchboard work pool, with fast polling."""
    env = _with_defaults(os.environ if environ is None else environ, WORKER_DEFAULTS)
    args = ["worker", "start", "--pool", WORK_POOL, "--type", "process", "--limit", str(limit)]
    args += ["--install-policy", "never", "--no-create-pool-if-not-found"]
    if name:
        args += ["--name", name]
    return Command(_prefect_argv(*args), env)


def worker_settings(environ: Mapping[str, str] | None = None) -> dict[Any, Any]:
    """:data:`WORKER_DEFAULTS` not set in the environment, as Prefect settings to apply in-process."""
    import prefect.settings

    environ = os.environ if environ is None else environ
    return {
        getattr(prefect.settings, key): value
        for key, value in WORKER_DEFAULTS.items()
        if key not in environ and key.startswith("PREFECT_WORKER_")
    }


async def prepare_worker() -> str:
    """Check the Prefect API and make sure the work pool exists; returns the API URL.

    Raises :class:`WorkerConfigError` when ``PREFECT_API_URL`` is not set or does not answer.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from switchboard.work_pool import ensure_work_pool

    url = PREFECT_API_URL.value()
    if not url:
        raise WorkerConfigError(
            "PREFECT_API_URL is not set: a worker needs a Prefect server "
            "(start one with `switchboard server` and export the URL it prints)"
        )
    async with get_client() as client:
        error = await client.api_healthcheck()
        if error is not None:
            raise WorkerConfigError(f"the Prefect API at {url} does not answer: {error}")
        await ensure_work_pool(client)
    return str(url)


def supervise(command: Command, *, grace: float = STOP_GRACE_SECONDS) -> int:
    """Run ``command`` until it ends; forward SIGTERM/SIGINT once; return an exit code.

    The child runs in its own session, so a terminal's Ctrl-C reaches it only through us
    (Prefect treats a second interrupt as "kill now"). A child that ends after a forwarded
    stop signal, however it ends, is a clean stop (0); one that outlives ``grace`` is killed.
    """
    child = subprocess.Popen(command.argv, env=command.env, preexec_fn=own_session_dying_with_parent)
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not stopping and child.poll() is None:
            child.send_signal(signum)
        stopping.append(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    deadline: float | None = None
    try:
        while True:
            try:
                returncode = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopping and deadline is None:
                    deadline = time.monotonic() + grace
                if deadline is not None and time.monotonic() > deadline:
                    child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()
            child.wait()
    if stopping:
        return 0
    return returncode if returncode >= 0 else 128 - returncode


def describe(command: Command) -> str:
    """The command line, for logs."""
    return " ".join(command.argv[2:]) if command.argv[1:2] == ["-m"] else " ".join(command.argv)
