"""Pooled httpx clients for provider transports: one per (event loop, base URL origin).

A client per request costs a TLS context (~20 ms measured in the runner), a TCP connect and,
over HTTPS, a TLS handshake. A pooled client keeps its connections alive between requests and
nodes. But an ``httpx.AsyncClient``'s connections belong to the event loop that opened them:
the CLI runs one loop per ``asyncio.run``, the bot and workers one long loop, tests a session
loop, and Prefect may run code in loops of its own. So the pool is kept per running loop and
a client is never handed to another loop.

A loop's clients are closed inside that loop when it shuts down: ``asyncio.run`` (and
``asyncio.Runner``, which pytest-asyncio uses) calls ``loop.shutdown_asyncgens()`` before
closing the loop, which closes every suspended async generator — one of them, started with
the loop's first client, closes the clients. A loop left open at exit is closed by an
``atexit`` hook. Nothing is left open, and nothing warns about unclosed sockets.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import httpx

#: Connection limits of one pooled client (httpx's defaults, spelled out).
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


@dataclass
class _LoopClients:
    """The clients of one event loop, by origin, and the generator that closes them."""

    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    closer: AsyncGenerator[None, None] | None = None
    closed: bool = False


# Keyed weakly: a loop that is gone takes its entry with it. Loops of several threads use it.
_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process (SSLContext is safe to share between clients and threads)."""
    return httpx.create_ssl_context()


def _origin(base_url: str) -> str:
    url = httpx.URL(base_url)
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


async def client_for(base_url: str) -> httpx.AsyncClient:
    """The running loop's pooled client for ``base_url``'s origin (made on first use).

    Requests give their own timeout; the client follows no redirects and honours the
    environment's proxy settings (provider base URLs are the operator's, not workflow input).
    """
    loop = asyncio.get_running_loop()
    origin = _origin(base_url)
    with _LOCK:
        pool = _POOLS.get(loop)
        fresh = pool is None or pool.closed
        if pool is None or pool.closed:
            pool = _POOLS[loop] = _LoopClients()
        client = pool.clients.get(origin)
        if client is None:
            client = pool.clients[origin] = httpx.AsyncClient(verify=_tls_context(), limits=LIMITS)
    if fresh:
        # Started here, suspended at its `yield` until the loop shuts its async generators down.
        pool.closer = _close_at_shutdown(pool)
        await anext(pool.closer)
    return client


async def _close_at_shutdown(pool: _LoopClients) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await _close(pool)


async def _close(pool: _LoopClients) -> None:
    pool.closed = True
    with _LOCK:
        for key, value in list(_POOLS.items()):
            if value is pool:
                del _POOLS[key]
        clients = list(pool.clients.values())
        pool.clients.clear()
    # Dropped so that the finished generator (which refers to the loop through its finalizer
    # hook) does not keep the loop alive.
    pool.closer = None
    for client in clients:
        await client.aclose()


async def aclose_clients() -> None:
    """Close the running loop's pooled clients now (long-lived owners may call this when they
    stop; ending the loop does it anyway). The next request opens new ones."""
    with _LOCK:
        pool = _POOLS.get(asyncio.get_running_loop())
    if pool is not None and not pool.closed:
        await _finish(pool)


async def _finish(pool: _LoopClients) -> None:
    """Close ``pool`` through its generator (so that it is done with too) or directly."""
    if pool.closer is not None:
        await pool.closer.aclose()
    else:
        await _close(pool)


@atexit.register
def _close_at_exit() -> None:
    """Close the clients of loops that were left open (not running, not closed) at exit."""
    with _LOCK:
        open_pools = [(loop, pool) for loop, pool in _POOLS.items() if not pool.closed]
    for loop, pool in open_pools:
        if loop.is_closed() or loop.is_running():
            continue
        try:
            loop.run_until_complete(_finish(pool))
        except Exception:  # at exit, a client that cannot close cleanly is not worth a traceback
            continue
