"""The shared 401 seam (nodes.auth.with_token) over real HTTP: refresh once, then reconnect.

GitHub and the AI family go through it here; the other providers' suites repeat the cases
against their own fakes.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from nodes.errors import AuthError
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import FakeOAuth
from tests.fakes.openai import FakeOpenAI, completion
from tests.nodes.context import call_node, make_context, store_resolver

pytestmark = pytest.mark.both_databases  # token refresh locks rows on both backends


async def test_a_refused_token_is_refreshed_once_for_five_concurrent_nodes(
    engine: AsyncEngine, fake_http: FakeHTTP
) -> None:
    oauth = FakeOAuth(fake_http)
    github = FakeGitHub(fake_http)
    github.add_file("acme/api", "README.md", b"# Acme\n")
    resolver = await store_resolver(
        engine, provider="github", secret=oauth.credential_secret(), base_url=github.base_url
    )

    outputs = await asyncio.gather(
        *(
            call_node(
                "github.read_file",
                {"repo": "acme/api", "path": "README.md"},
                make_context(resolver=resolver, node_id=f"n{i}"),
            )
            for i in range(5)
        )
    )

    assert [o["content"] for o in outputs] == ["# Acme\n"] * 5
    assert len(oauth.token_requests()) == 1
    contents = fake_http.calls(github.contents_path("acme/api", "README.md"))
    assert {r.headers["authorization"] for r in contents} == {"token stale-token", "token fresh-token-1"}
    assert sum(r.headers["authorization"] == "token fresh-token-1" for r in contents) == 5
    # the refreshed token was stored: the next node uses it without a 401 or a refresh
    await call_node("github.read_file", {"repo": "acme/api", "path": "README.md"}, make_context(resolver=resolver))
    assert len(oauth.token_requests()) == 1
    assert fake_http.calls(github.contents_path("acme/api", "README.md"))[-1].headers["authorization"] == (
        "token fresh-token-1"
    )


async def test_an_expiring_token_is_refreshed_before_the_request(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    resolver = await store_resolver(
        engine,
        provider="openai",
        secret=oauth.credential_secret(expires_at=time.time() + 10),
        base_url=ai.base_url,
    )
    await asyncio.gather(*(call_node("ai.chat", {"prompt": "hi"}, make_context(resolver=resolver)) for _ in range(5)))
    assert len(oauth.token_requests()) == 1
    assert {r.headers["authorization"] for r in ai.requests()} == {"Bearer fresh-token-1"}


async def test_a_revoked_grant_says_which_credential_to_reconnect(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("never"))
    oauth.revoke()
    resolver = await store_resolver(engine, provider="openai", secret=oauth.credential_secret(), base_url=ai.base_url)
    with pytest.raises(AuthError, match=r"reconnect credential 'test-credential'") as caught:
        await call_node("ai.chat", {"prompt": "hi"}, make_context(resolver=resolver))
    assert len(oauth.token_requests()) == 1
    assert ai.requests() == [] or all(r.headers["authorization"] == "Bearer stale-token" for r in ai.requests())
    assert "refresh-0" not in str(caught.value) and "client-secret-0" not in str(caught.value)


async def test_a_plain_token_refused_is_not_refreshed(fake_http: FakeHTTP) -> None:
    github = FakeGitHub(fake_http)
    fake_http.require_token("good-token")
    github.add_file("acme/api", "README.md", b"x")
    ctx = make_context(credential={"token": "bad-token", "base_url": github.base_url})
    with pytest.raises(AuthError, match="reconnect credential 'test-credential'"):
        await call_node("github.read_file", {"repo": "acme/api", "path": "README.md"}, ctx)
    assert len(fake_http.calls(github.contents_path("acme/api", "README.md"))) == 1


async def test_a_refused_model_server_token_is_refreshed_once(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    resolver = await store_resolver(engine, provider="openai", secret=oauth.credential_secret(), base_url=ai.base_url)
    outputs = await asyncio.gather(
        *(call_node("ai.chat", {"prompt": "hi"}, make_context(resolver=resolver)) for _ in range(5))
    )
    assert [o["text"] for o in outputs] == ["ok"] * 5
    assert len(oauth.token_requests()) == 1
    assert sum(r.headers["authorization"] == "Bearer fresh-token-1" for r in ai.requests()) == 5


async def test_a_revoked_github_grant_says_reconnect(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    github = FakeGitHub(fake_http)
    github.add_file("acme/api", "README.md", b"x")
    oauth.revoke()
    resolver = await store_resolver(
        engine, provider="github", secret=oauth.credential_secret(), base_url=github.base_url
    )
    with pytest.raises(AuthError, match=r"reconnect credential 'test-credential'") as caught:
        await call_node("github.read_file", {"repo": "acme/api", "path": "README.md"}, make_context(resolver=resolver))
    assert len(oauth.token_requests()) == 1
    assert not any(secret in str(caught.value) for secret in ("stale-token", "refresh-0", "client-secret-0"))
