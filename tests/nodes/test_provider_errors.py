"""One error suite for every registered provider, over real HTTP to its fake.

Each case in :data:`tests.nodes.provider_cases.CASES` (one per provider in
``nodes.providers.PROVIDERS``) goes through the same failures, injected with
``FakeHTTP.fail_next``: a refused credential (refreshed once where the provider has OAuth),
403, 404, 429 with Retry-After, 5xx (retried by the runner) and a timeout. The rules where a
provider really differs (Airtable's 30 s, Google's and GitHub's 403 rate limits, Slack's
``ok: false`` bodies) follow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import switchboard
from nodes.errors import AuthError, ProviderError, TransientError
from nodes.providers import get_provider
from tests.fakes.gdrive import rate_limited
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import FakeOAuth
from tests.fakes.slack import error as slack_error
from tests.nodes.context import call_node, make_context, store_resolver
from tests.nodes.provider_cases import CASES, TOKEN, Case

ALL = [pytest.param(case, id=name) for name, case in CASES.items()]
OAUTH = [pytest.param(case, id=name) for name, case in CASES.items() if get_provider(name).oauth is not None]
PLAIN = [pytest.param(case, id=name) for name, case in CASES.items() if get_provider(name).oauth is None]


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """SQLite only: the refresh goes through a real CredentialStore; Postgres adds nothing here."""
    yield f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"


async def call(case: Case, fake_http: FakeHTTP, *, token: str = TOKEN, node: str | None = None, **params: Any) -> Any:
    fake = case.start(fake_http, TOKEN)
    ctx = make_context(credential={"token": token, "base_url": case.base_url(fake)})
    return await call_node(node or case.node, params or case.params, ctx)


def api_requests(case: Case, fake_http: FakeHTTP) -> list[Any]:
    return [r for r in fake_http.requests if r.path.startswith(case.api)]


@pytest.mark.parametrize("case", ALL)
async def test_the_happy_path_answers(case: Case, fake_http: FakeHTTP) -> None:
    assert await call(case, fake_http) is not None


@pytest.mark.parametrize("case", OAUTH)
async def test_a_refused_oauth_token_is_refreshed_once(case: Case, fake_http: FakeHTTP, engine: Any) -> None:
    oauth = FakeOAuth(fake_http)
    fake = case.start(fake_http, None)
    resolver = await store_resolver(
        engine, provider=case.provider, secret=oauth.credential_secret(), base_url=case.base_url(fake)
    )
    await call_node(case.node, case.params, make_context(resolver=resolver))
    assert len(oauth.token_requests()) == 1
    tokens = [r.headers.get("authorization", "").split(" ")[-1] for r in api_requests(case, fake_http)]
    assert tokens[0] == "stale-token" and tokens[-1] == "fresh-token-1"


@pytest.mark.parametrize("case", PLAIN)
async def test_a_refused_plain_token_says_reconnect(case: Case, fake_http: FakeHTTP) -> None:
    with pytest.raises(AuthError) as raised:
        await call(case, fake_http, token="wrong-token")
    title = get_provider(case.provider).title
    assert f"{title} refused the credential" in str(raised.value)
    assert "reconnect credential 'test-credential'" in str(raised.value)
    assert len(api_requests(case, fake_http)) == 1  # nothing to refresh: asked once


@pytest.mark.parametrize("case", ALL)
async def test_an_injected_401_is_an_auth_error_with_the_providers_message(case: Case, fake_http: FakeHTTP) -> None:
    fake_http.fail_next(401, case.body("token expired"), path=case.api)
    with pytest.raises(AuthError) as raised:
        await call(case, fake_http)
    assert raised.value.status == 401 and raised.value.provider == case.provider
    assert "token expired" in str(raised.value) and "reconnect credential 'test-credential'" in str(raised.value)


@pytest.mark.parametrize("case", ALL)
async def test_403_is_permanent_with_the_providers_message(case: Case, fake_http: FakeHTTP) -> None:
    fake_http.fail_next(403, case.body("no access to that"), path=case.api)
    with pytest.raises(ProviderError) as raised:
        await call(case, fake_http)
    assert type(raised.value) is ProviderError and raised.value.status == 403
    assert "no access to that" in str(raised.value)


@pytest.mark.parametrize("case", ALL)
async def test_404_names_what_was_not_found(case: Case, fake_http: FakeHTTP) -> None:
    if case.missing is not None:
        node, params, named = case.missing
        with pytest.raises(ProviderError) as raised:
            await call(case, fake_http, node=node, **params)
    else:
        fake_http.fail_next(404, case.body("not found"), path=case.api)
        with pytest.raises(ProviderError) as raised:
            await call(case, fake_http)
        named = api_requests(case, fake_http)[-1].path
    assert type(raised.value) is ProviderError and raised.value.status == 404
    assert named in str(raised.value)


@pytest.mark.parametrize("case", ALL)
async def test_429_is_transient_with_retry_after(case: Case, fake_http: FakeHTTP) -> None:
    fake_http.fail_next(429, case.body("slow down"), {"Retry-After": "7"}, path=case.api)
    with pytest.raises(TransientError) as raised:
        await call(case, fake_http)
    assert (raised.value.status, raised.value.retry_after) == (429, 7.0)


@pytest.mark.parametrize("case", ALL)
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(case: Case, status: int, fake_http: FakeHTTP) -> None:
    fake_http.fail_next(status, case.body("upstream trouble"), path=case.api)
    with pytest.raises(TransientError) as raised:
        await call(case, fake_http)
    assert raised.value.status == status


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", ALL)
async def test_5xx_is_retried_by_the_runner(case: Case, fake_http: FakeHTTP) -> None:
    fake = case.start(fake_http, TOKEN)
    fake_http.fail_next(503, case.body("down"), path=case.api)

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": TOKEN, "base_url": case.base_url(fake)}

    node = {"id": "n", "type": case.node, "credential": "c", "params": case.params, "retries": 1, "retry_delay": 0}
    result = await switchboard.arun(
        {"name": f"{case.provider}-retry", "nodes": [node]}, credential_resolver=resolve, record=False
    )
    assert (result.status, result.nodes["n"].attempts) == ("completed", 2)


@pytest.mark.parametrize("case", ALL)
async def test_a_timeout_is_transient(case: Case, fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    case.shorten(monkeypatch)
    release = threading.Event()
    fake_http.fail_next(200, case.body("late"), path=case.api, hold=release)
    try:
        with pytest.raises(TransientError, match="timed out"):
            await call(case, fake_http)
    finally:
        release.set()


# -- where a provider really differs ------------------------------------------------------


async def test_airtable_waits_30_seconds_after_a_429_without_retry_after(fake_http: FakeHTTP) -> None:
    case = CASES["airtable"]
    fake_http.fail_next(429, case.body("too many"), path=case.api)
    with pytest.raises(TransientError) as raised:
        await call(case, fake_http)
    assert raised.value.retry_after == 30.0


@pytest.mark.parametrize("user", [False, True])
async def test_a_google_403_rate_limit_is_transient(user: bool, fake_http: FakeHTTP) -> None:
    case = CASES["gdrive"]
    fake_http.fail_next(rate_limited(user=user), path=case.api)
    with pytest.raises(TransientError) as raised:
        await call(case, fake_http)
    assert raised.value.status == 403


async def test_a_github_403_with_no_quota_left_waits_for_the_reset(fake_http: FakeHTTP) -> None:
    case = CASES["github"]
    reset = str(int(time.time()) + 60)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    fake_http.fail_next(403, case.body("API rate limit exceeded"), headers, path=case.api)
    with pytest.raises(TransientError) as raised:
        await call(case, fake_http)
    assert raised.value.status == 403 and raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 61


async def test_a_github_secondary_rate_limit_is_transient(fake_http: FakeHTTP) -> None:
    case = CASES["github"]
    fake_http.fail_next(403, case.body("You have exceeded a secondary rate limit."), path=case.api)
    with pytest.raises(TransientError):
        await call(case, fake_http)


@pytest.mark.parametrize(
    ("code", "error"),
    [("ratelimited", TransientError), ("token_revoked", AuthError), ("channel_not_found", ProviderError)],
)
async def test_slack_ok_false_bodies_map_onto_the_tree(code: str, error: type[Exception], fake_http: FakeHTTP) -> None:
    case = CASES["slack"]
    fake_http.fail_next(slack_error(code), path=case.api)
    with pytest.raises(error) as raised:
        await call(case, fake_http)
    assert type(raised.value) is error and code in str(raised.value)
