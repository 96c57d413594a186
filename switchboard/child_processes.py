"""Child processes that never outlive the Switchboard process that started them.

A child started here (the embedded Prefect server, ``switchboard server``'s Prefect, an
isolated worker's Prefect worker) runs in a session and process group of its own, so a
terminal's Ctrl-C reaches it only through its parent, which decides how to stop it; and it
asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``), so no way the
parent ends — a clean exit, SIGTERM re-raised after a graceful shutdown (uvicorn does that,
and then no ``atexit`` handler runs), SIGKILL, a crash — leaves the child behind.

The kernel sends the parent-death signal when the *thread* that forked the child ends, not
the process. Children are therefore forked from one thread that lives as long as the process
(:func:`spawn`), never from a short-lived worker thread.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def own_session_dying_with_parent() -> None:
    """``preexec_fn`` of a child: its own session, and SIGTERM when the forking thread ends."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died between fork and prctl: nobody will signal us
            os._exit(1)


def _spawner_thread() -> ThreadPoolExecutor:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-spawner")
        return _spawner


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with this process (see the module docstring).

    Forked from the main thread when called there (it lives as long as the process), else
    from the process's one spawner thread.
    """

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=own_session_dying_with_parent,
        )

    if threading.current_thread() is threading.main_thread():
        return start()
    return _spawner_thread().submit(start).result()


def stop(child: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM ``child``'s process group, SIGKILL it after ``grace`` seconds; reap it."""
    if child.returncode is not None:
        return  # reaped already: its pid (and group id) may belong to someone else by now
    try:
        os.killpg(child.pid, signal.SIGTERM)  # its own group: anything it started goes too
    except ProcessLookupError:  # the child and everything in its group are gone
        child.poll()
        return
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
