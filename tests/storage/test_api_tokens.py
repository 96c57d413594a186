"""API tokens and idempotency keys in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage.api_tokens import ApiTokenError, ApiTokenStore
from storage.audit import entries
from storage.idempotency import IdempotencyKeys
from switchboard.tokens import ApiTokens, TokenRefusedError


async def test_a_token_is_found_by_its_hash_revoked_and_its_name_reused(engine: Any) -> None:
    tokens = ApiTokens(engine, "cli:test")
    made, secret = await tokens.create("ci", scope="run", workflows=["greet"], owner="U1")
    assert (made.scope, made.workflows, made.owner, made.expires_at) == ("run", ("greet",), "U1", None)
    found = await tokens.authenticate(secret)
    assert found.name == "ci" and found.last_used_at is not None

    with pytest.raises(ApiTokenError, match="exists already"):
        await tokens.create("ci", scope="read")
    await tokens.revoke("ci")
    with pytest.raises(TokenRefusedError, match="revoked"):
        await tokens.authenticate(secret)
    _, fresh = await tokens.create("ci", scope="read")
    assert (await tokens.authenticate(fresh)).scope == "read"
    with pytest.raises(TokenRefusedError, match="unknown"):
        await tokens.authenticate(secret)  # the revoked row was replaced
    actions = [(e.action, e.target) for e in await entries(engine)]
    assert actions[:3] == [("create-api-token", "ci"), ("revoke-api-token", "ci"), ("create-api-token", "ci")]


async def test_expiry_is_checked_against_the_clock(engine: Any) -> None:
    tokens = ApiTokens(engine, "cli:test")
    _, secret = await tokens.create("short", scope="read", expires_in=timedelta(hours=1))
    assert (await tokens.authenticate(secret)).name == "short"
    with pytest.raises(TokenRefusedError, match="expired"):
        await tokens.authenticate(secret, now=datetime.now(UTC) + timedelta(hours=2))
    listed = await ApiTokenStore(engine).list()
    assert [t.name for t in listed] == ["short"] and listed[0].token_hash != secret


async def test_of_racing_claims_of_one_key_exactly_one_wins(engine: Any) -> None:
    keys = IdempotencyKeys(engine)
    claims = await asyncio.gather(
        *(keys.claim("api:ci:order-1", request=b"same", run_id=f"run{i}", ttl=60) for i in range(8))
    )
    winners = [c for c in claims if c.won]
    assert len(winners) == 1
    assert {c.run_id for c in claims} == {winners[0].run_id}
    other = await keys.claim("api:ci:order-1", request=b"other", run_id="late", ttl=60)
    assert (other.won, other.same_request, other.run_id) == (False, False, winners[0].run_id)


async def test_an_expired_key_is_taken_over_and_a_released_one_is_free(engine: Any) -> None:
    keys = IdempotencyKeys(engine)
    assert (await keys.claim("k", request=b"a", run_id="first", ttl=10, now=1_000)).won
    assert not (await keys.claim("k", request=b"a", run_id="second", ttl=10, now=1_005)).won
    assert (await keys.claim("k", request=b"b", run_id="third", ttl=10, now=1_011)).won
    await keys.release("k")
    assert (await keys.claim("k", request=b"b", run_id="fourth", ttl=10, now=1_012)).won
