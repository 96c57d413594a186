"""Idempotent run requests from the client (``client.idempotency``): ``Idempotency-Key``.

The same key with the same request returns the run the first request started, for
:data:`TTL_SECONDS` (24 h), whichever bot process on the database it reaches; the same key with
another request is refused (:class:`IdempotencyConflictError`). Keys are scoped by the caller
(an API token, a webhook's workflow), so two callers never share one.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.idempotency import Claim, IdempotencyKeys

__all__ = ["TTL_SECONDS", "Claim", "IdempotencyConflictError", "IdempotentRequests", "check_key"]

#: How long a key holds its run.
TTL_SECONDS = 24 * 3600
#: Printable ASCII without blanks, as the IETF draft and Stripe's practice have it.
KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")


class IdempotencyConflictError(ValueError):
    """The key was used before with another request; ``run_id`` is the run it started."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "this Idempotency-Key was used with another request in the last 24 h; use a new key for a new request"
        )
        self.run_id = run_id


def check_key(key: str) -> str:
    """``key`` if it is 1-255 printable ASCII characters without blanks; else ValueError."""
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError("Idempotency-Key must be 1 to 255 printable ASCII characters, without blanks")
    return key


class IdempotentRequests:
    """Claim keys for runs (``client.idempotency``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._keys = IdempotencyKeys(engine)

    async def claim(self, scope: str, key: str, *, request: bytes, run_id: str) -> Claim:
        """Claim ``key`` (of caller ``scope``) for ``run_id``: ``won`` means start the run; else
        the earlier run's id. Raises :class:`IdempotencyConflictError` for another request."""
        claim = await self._keys.claim(f"{scope}\n{check_key(key)}", request=request, run_id=run_id, ttl=TTL_SECONDS)
        if not claim.won and not claim.same_request:
            raise IdempotencyConflictError(claim.run_id)
        return claim

    async def release(self, scope: str, key: str) -> None:
        """Give ``key`` up again: the run it was claimed for did not start."""
        await self._keys.release(f"{scope}\n{key}")
