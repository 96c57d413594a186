"""Who is calling the API and what they may do: the bearer token, its rate limit, its scope.

A call presents ``Authorization: Bearer sbt_...``. A missing, malformed, unknown, expired or
revoked token is 401; one whose scope or workflows do not cover the call is 403. A workflow
the caller may not read is 404, exactly as one that does not exist. Every refusal is in the
audit log (actor ``api:<token>``, or ``api:?`` for a token nobody holds; action
``refused-api``; the reason, never the token).

Each token may make ``SWITCHBOARD_API_RATE_LIMIT`` calls a minute to this bot process (429 with
``Retry-After`` beyond). Refused calls (no valid token) are limited the same way per client
address before they are audited, so guessing tokens is slow and cannot flood the audit log; a
valid token is never held up by refusals from its address.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from bot.api.errors import ApiError
from bot.permissions import Access
from bot.runtime import BotRuntime
from flows.model import Workflow
from switchboard.tokens import ApiToken, Scope, TokenRefusedError

#: How many distinct callers a rate limiter remembers before it forgets the idlest.
MAX_TRACKED = 10_000


@dataclass
class RateLimiter:
    """A token bucket per caller: ``per_minute`` calls, refilled continuously."""

    per_minute: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # caller -> (tokens, at)

    def take(self, caller: str, now: float | None = None) -> float:
        """Spend one call of ``caller``'s; returns 0, or how many seconds until one is free."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        tokens, at = self._buckets.get(caller, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / rate
        if len(self._buckets) >= MAX_TRACKED and caller not in self._buckets:
            oldest = min(self._buckets, key=lambda key: self._buckets[key][1])
            del self._buckets[oldest]
        self._buckets[caller] = (tokens - 1.0, now)
        return 0.0


def _rate_limited(wait: float) -> ApiError:
    seconds = max(1, math.ceil(wait))
    return ApiError(429, f"too many requests; try again in {seconds} s", headers={"Retry-After": str(seconds)})


@dataclass
class Caller:
    """One authenticated call: its token, and the Slack user it acts as (the token's owner)."""

    token: ApiToken
    runtime: BotRuntime
    access: Access | None

    @property
    def actor(self) -> str:
        return self.token.actor

    async def refuse(self, status: int, message: str, target: str, **detail: Any) -> ApiError:
        """An :class:`ApiError`, audited as a refused use of the token."""
        await self.runtime.core.audit.append(
            actor=f"api:{self.token.name}",
            action="refused-api",
            target=target[:100],
            detail={"status": status, "reason": message, **detail},
        )
        return ApiError(status, message)

    async def readable(self, name: str) -> Workflow | None:
        """The policy of workflow ``name`` if the caller may read it, else None (the caller
        answers 404: a workflow one may not read is one that does not exist)."""
        if not self.token.covers(name):
            return None
        policy = await self.runtime.policy(name)
        if policy is None:
            return None
        if self.access is not None and not await self.access.may_read(policy):
            return None
        return policy

    async def may_read(self, name: str) -> bool:
        return await self.readable(name) is not None

    async def require_read(self, name: str, *, what: str = "workflow") -> Workflow:
        """The policy of ``name``, or a 404 (audited) when the caller may not read it."""
        policy = await self.readable(name)
        if policy is None:
            raise await self.refuse(404, f"no {what} named {name[:100]!r} that this token can see", name)
        return policy

    async def require_run(self, name: str, *, action: str) -> Workflow:
        """The policy of ``name`` when the caller may run it (and so ``action`` its runs); else 404
        (cannot read it) or 403 (scope, or the owner's permissions), audited."""
        policy = await self.require_read(name)
        if not self.token.allows("run"):
            raise await self.refuse(
                403, f"token {self.token.name!r} has scope {self.token.scope}: it may not {action} runs", name
            )
        if self.access is not None and not await self.access.may_run(policy):
            raise await self.refuse(
                403, f"{self.token.owner} may not run {name!r} (its permissions), so this token may not {action}", name
            )
        return policy

    def require_scope(self, needed: Scope, what: str) -> None:
        if not self.token.allows(needed):
            raise ApiError(403, f"token {self.token.name!r} has scope {self.token.scope}: {what} needs {needed}")


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()[:200]


async def authenticate(request: Request, runtime: BotRuntime, limiter: RateLimiter) -> Caller:
    """The :class:`Caller` of ``request``, or an :class:`ApiError` (401 or 429)."""
    address = request.client.host if request.client else "unknown"
    presented = _presented(request)
    try:
        token = await runtime.core.tokens.authenticate(presented)
    except TokenRefusedError as exc:
        wait = limiter.take(f"address:{address}")
        if wait:
            raise _rate_limited(wait) from None
        await runtime.core.audit.append(
            actor=f"api:{exc.name or '?'}",
            action="refused-api",
            target=request.url.path[:100],
            detail={"status": 401, "reason": str(exc), "address": address[:64]},
        )
        raise ApiError(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="switchboard"'}) from None
    wait = limiter.take(f"token:{token.name}")
    if wait:
        raise _rate_limited(wait)
    access = runtime.access(token.owner) if token.owner else None
    return Caller(token, runtime, access)
