"""The replay guard in the database: the first claim of a key wins, across engines (processes)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from sqlalchemy import text

from storage.db import create_engine
from storage.replays import ReplayGuard


async def test_the_first_claim_wins_until_it_expires(engine: Any) -> None:
    guard = ReplayGuard(engine)
    now = int(time.time())
    assert await guard.claim("webhook:a", until=now + 300, run_id="run-1")
    assert not await guard.claim("webhook:a", until=now + 300, run_id="run-2")
    assert await guard.holder("webhook:a") == "run-1"
    assert await guard.holder("webhook:other") is None
    assert await guard.claim("webhook:other", until=now + 300)  # another key is another request

    # A request whose window is over cannot pass its timestamp check; its row is taken over.
    assert await guard.claim("webhook:old", until=now - 1, run_id="run-3")
    assert await guard.claim("webhook:old", until=now + 300, run_id="run-4")
    assert await guard.holder("webhook:old") == "run-4"

    await guard.release("webhook:a")  # a claim whose run could not start
    assert await guard.claim("webhook:a", until=now + 300, run_id="run-5")


async def test_rows_hold_hashes_only_and_old_ones_are_pruned(engine: Any) -> None:
    guard = ReplayGuard(engine)
    now = int(time.time())
    await guard.claim("slack:v0=secret-looking-signature", until=now + 300)
    await guard.claim("slack:long-gone", until=now - 2 * ReplayGuard.PRUNE_GRACE_SECONDS)
    await guard.claim("slack:just-expired", until=now - 1)
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT key_hash, expires_at FROM replay_guard"))).all()
    expected = hashlib.sha256(b"slack:v0=secret-looking-signature").hexdigest()
    assert expected in {row[0] for row in rows}
    assert all("signature" not in row[0] for row in rows)

    assert await guard.prune() == 1  # the just-expired row stays a grace period (clock skew)
    async with engine.connect() as connection:
        left = (await connection.execute(text("SELECT count(*) FROM replay_guard"))).scalar()
    assert left == 2


async def test_two_engines_racing_on_one_key_claim_it_once(engine: Any, database_url: str) -> None:
    other = create_engine(database_url)  # another process's engine on the same database
    try:
        guards = [ReplayGuard(engine), ReplayGuard(other)]
        until = int(time.time()) + 300
        claims = await asyncio.gather(
            *(guards[i % 2].claim("webhook:race", until=until, run_id=f"run-{i}") for i in range(20))
        )
        assert sorted(claims) == [False] * 19 + [True]
        winner = claims.index(True)
        assert await guards[1].holder("webhook:race") == f"run-{winner}"
    finally:
        await other.dispose()
