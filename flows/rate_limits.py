"""Per-credential request rates, enforced by Prefect's global concurrency limits.

Every node that calls a provider takes one slot of a rate limit named after its credential
before each attempt (``switchboard:<provider>:<credential>``), so the parallel branches of a
``for_each``, other runs and other workers share one budget instead of tripping a 429 storm.
A node's ``rate_limit: {per_second: N}`` sets the budget; otherwise the provider's default
applies (``per_second`` of its descriptor in :data:`nodes.providers.PROVIDERS`).
Nodes without a credential are limited only when they declare ``rate_limit``
(keyed by workflow and node id).

Where the budget lives (``SWITCHBOARD_RATE_LIMITS``):

* ``prefect`` — a Prefect global concurrency limit with ``slot_decay_per_second``, shared by
  every process and worker using the Prefect server; it can be seen, changed or deactivated in
  the Prefect UI (Concurrency) and is created or updated the first time a process uses it with
  a different rate. One API call per node attempt (~10 ms); a Prefect server on SQLite
  stalls ~2 s on "database is locked" under this write load, so use Postgres behind it.
* ``local`` — a token bucket in this process: the embedded default, where this process is the
  only one running nodes.
* ``auto`` (the default) — ``prefect`` when ``PREFECT_API_URL`` names a Prefect server,
  ``local`` on the embedded ephemeral server.
* ``off`` — no limit.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import get_current_settings

from nodes.providers import find_provider

Backend = Literal["auto", "prefect", "local", "off"]


def default_per_second(provider: str) -> float | None:
    """Requests per second per credential when a node does not say: the provider's
    registered default, chosen under its published limits (None: not limited)."""
    found = find_provider(provider)
    return found.per_second if found is not None else None


@dataclass(frozen=True)
class RateLimit:
    """The limit one node attempt takes a slot of."""

    name: str
    per_second: float

    @property
    def burst(self) -> int:
        return max(1, math.ceil(self.per_second))


def limit_for(
    *,
    workflow: str,
    node_id: str,
    provider: str | None,
    credential: str | None,
    declared: float | None,
) -> RateLimit | None:
    """The rate limit a node's attempts take, or None when it has none."""
    if provider and credential:
        per_second = declared if declared is not None else default_per_second(provider)
        return RateLimit(f"switchboard:{provider}:{credential}", per_second) if per_second else None
    if declared is not None:
        return RateLimit(f"switchboard:{workflow}:{node_id}", declared)
    return None


#: Limits this process has created or checked, with the rate it set.
_ENSURED: dict[str, float] = {}
_LOCKS: dict[str, asyncio.Lock] = {}


async def _ensure(limit: RateLimit) -> None:
    if _ENSURED.get(limit.name) == limit.per_second:
        return
    lock = _LOCKS.setdefault(limit.name, asyncio.Lock())
    async with lock:
        if _ENSURED.get(limit.name) == limit.per_second:
            return
        async with get_client() as client:
            try:
                await client.upsert_global_concurrency_limit_by_name(
                    limit.name, limit.burst, slot_decay_per_second=limit.per_second
                )
            except ObjectAlreadyExists:  # another process created it between read and create
                await client.upsert_global_concurrency_limit_by_name(
                    limit.name, limit.burst, slot_decay_per_second=limit.per_second
                )
        _ENSURED[limit.name] = limit.per_second


@dataclass
class _Bucket:
    """A token bucket that hands out reservations: a caller takes a token now and is told how
    long to wait for it, so waiters are served in arrival order without holding a lock."""

    per_second: float
    burst: int
    tokens: float = 0.0
    updated: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def reserve(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.per_second)
            self.updated = now
            self.tokens -= 1.0
            return 0.0 if self.tokens >= 0 else -self.tokens / self.per_second


_BUCKETS: dict[str, _Bucket] = {}
_BUCKETS_LOCK = threading.Lock()


def _bucket(limit: RateLimit) -> _Bucket:
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(limit.name)
        if bucket is None or bucket.per_second != limit.per_second:
            bucket = _BUCKETS[limit.name] = _Bucket(limit.per_second, limit.burst)
        return bucket


def resolve_backend(backend: Backend) -> Backend:
    """``auto`` -> ``prefect`` with a Prefect server (``PREFECT_API_URL``), else ``local``."""
    if backend != "auto":
        return backend
    return "prefect" if get_current_settings().api.url else "local"


async def acquire(limit: RateLimit, backend: Backend = "auto") -> None:
    """Wait for one slot of ``limit`` in the chosen backend."""
    chosen = resolve_backend(backend)
    if chosen == "prefect":
        await _ensure(limit)
        await rate_limit(limit.name, occupy=1)
    elif chosen == "local":
        wait = _bucket(limit).reserve()
        if wait > 0:
            await asyncio.sleep(wait)
