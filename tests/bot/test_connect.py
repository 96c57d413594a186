"""`/flow connect PROVIDER`: the authorize link, the single-use callback, the user's own token in runs.

Everything over real HTTP: the bot on uvicorn, Slack faked by FakeSlack, GitHub's OAuth
endpoints by FakeOAuth and its API by FakeGitHub on one FakeHTTP (which accepts only the tokens
the fake issued, plus the shared credential's).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from storage.audit import entries
from storage.db import sessionmaker
from storage.models import CredentialRow, utcnow
from storage.oauth_states import OAuthStateRow
from storage.runs import RunStore
from switchboard.credentials import credential_store
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TOKEN_PATH, FakeOAuth
from tests.fakes.slack import slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

SHARED_TOKEN = "shared-token"
READ_README = {
    "name": "readme",
    "nodes": [
        {
            "id": "read",
            "type": "github.read_file",
            "credential": "github-default",
            "params": {"repo": "acme/api", "path": "README.md"},
        }
    ],
}


@dataclass
class Provider:
    """GitHub, faked: OAuth endpoints and the API on one server."""

    http: FakeHTTP
    oauth: FakeOAuth
    github: FakeGitHub


@pytest.fixture
def provider_http() -> Iterator[FakeHTTP]:
    fake = FakeHTTP().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def github(bot: Bot, provider_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Provider]:
    """GitHub configured for connecting (env), and the bot's public URL set."""
    oauth = FakeOAuth(provider_http)
    github = FakeGitHub(provider_http)
    provider_http.accept_token(SHARED_TOKEN)
    # runs read Settings() from the environment: give them the bot's home (and so its key)
    monkeypatch.setenv("SWITCHBOARD_HOME", str(bot.runtime.settings.home))
    for key, value in {
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "AUTHORIZE_URL": oauth.authorize_url,
        "TOKEN_URL": oauth.token_url,
        "API_URL": github.base_url,
    }.items():
        monkeypatch.setenv(f"SWITCHBOARD_OAUTH_GITHUB_{key}", value)
    # the bot read its settings when it started: it is restarted with these (as an operator would)
    bot.runtime.settings = bot.runtime.settings.with_current_environment()
    monkeypatch.setattr(bot.runtime.settings, "public_url", bot.url + "/")
    yield Provider(provider_http, oauth, github)


_answers = iter(range(10_000))


async def command(bot: Bot, text: str, *, user: str = "U42") -> dict[str, Any]:
    """Post a signed slash command; the ephemeral answer that came to its response_url."""
    name = f"connect{next(_answers)}"
    headers, body = slash_command(text, user=user, response_url=bot.slack.response_url(name))
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bool(bot.slack.responses(name)), message=f"the answer to `{text}`")
    (answer,) = bot.slack.responses(name)
    assert answer["response_type"] == "ephemeral"
    return answer


def link_of(answer: dict[str, Any]) -> str:
    found = re.search(r"<(https?://[^|>]+)\|", answer["text"])
    assert found, answer["text"]
    return found.group(1).replace("&amp;", "&")


async def authorize(bot: Bot, link: str) -> str:
    """Open the link as a browser would: the fake provider redirects to the bot's callback."""
    response = await bot.http.get(link)
    assert response.status_code == 302
    return response.headers["location"]


async def connect(bot: Bot, *, user: str = "U42", text: str = "connect github") -> httpx.Response:
    callback = await authorize(bot, link_of(await command(bot, text, user=user)))
    return await bot.http.get(callback)


async def credential_rows(bot: Bot) -> list[CredentialRow]:
    async with sessionmaker(bot.engine)() as session:
        return list((await session.execute(select(CredentialRow).order_by(CredentialRow.owner))).scalars())


async def wait_for_dm(bot: Bot, user: str) -> list[str]:
    def texts() -> list[str]:
        return [c.args["text"] for c in bot.slack.calls("chat.postMessage") if c.args["channel"] == user]

    await apoll_until(lambda: bool(texts()), message=f"a message to {user}")
    return texts()


async def test_connect_stores_the_users_own_encrypted_credential_and_the_state_works_once(
    bot: Bot, github: Provider
) -> None:
    answer = await command(bot, "connect github")
    link = link_of(answer)
    assert "Connect your GitHub account" in answer["text"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    assert link.startswith(github.oauth.authorize_url + "?")
    assert query["client_id"] == CLIENT_ID and query["response_type"] == "code" and query["scope"] == "repo"
    assert query["redirect_uri"] == f"{bot.url}/oauth/github/callback"
    assert query["code_challenge_method"] == "S256" and len(query["state"]) >= 40
    async with sessionmaker(bot.engine)() as session:
        (pending,) = (await session.execute(select(OAuthStateRow))).scalars()
    assert pending.state_hash == hashlib.sha256(query["state"].encode()).hexdigest()  # only the hash is kept
    assert (pending.slack_user, pending.provider, pending.credential) == ("U42", "github", "github-default")

    callback = await authorize(bot, link)
    assert callback.startswith(f"{bot.url}/oauth/github/callback?code=")
    page = await bot.http.get(callback)
    assert page.status_code == 200 and "GitHub is connected" in page.text and "close this tab" in page.text
    assert page.headers["cache-control"] == "no-store"

    (token_request,) = github.http.calls(TOKEN_PATH, "POST")
    form = {k: v[0] for k, v in parse_qs(token_request.body.decode()).items()}
    assert form["grant_type"] == "authorization_code" and form["redirect_uri"] == query["redirect_uri"]
    assert (form["client_id"], form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
    assert token_request.headers["accept"] == "application/json"

    (row,) = await credential_rows(bot)
    assert (row.name, row.owner, row.provider, row.base_url) == (
        "github-default",
        "U42",
        "github",
        github.github.base_url,
    )
    assert row.scopes == ["repo", "read:org"]
    assert "user-token-1" not in row.secret and REFRESH_TOKEN not in row.secret and CLIENT_SECRET not in row.secret
    assert row.expires_at is not None
    resolved = await credential_store(bot.engine, bot.runtime.settings).resolve("github-default", "github", owner="U42")
    assert resolved["access_token"] == "user-token-1" and resolved["refresh_token"] == REFRESH_TOKEN
    assert resolved["token_url"] == github.oauth.token_url and resolved["client_id"] == CLIENT_ID
    (dm,) = await wait_for_dm(bot, "U42")
    assert "GitHub account is connected" in dm and "`github-default`" in dm and "user-token" not in dm
    assert (await entries(bot.engine, limit=1))[0].action == "credential-add"

    again = await bot.http.get(callback)  # the same state a second time
    assert again.status_code == 400 and "/flow connect github" in again.text
    assert len(github.http.calls(TOKEN_PATH, "POST")) == 1
    unknown = await bot.http.get(f"{bot.url}/oauth/github/callback?code=x&state=made-up")
    assert unknown.status_code == 400 and "expired" in unknown.text

    # connecting again replaces the user's credential in place
    assert (await connect(bot)).status_code == 200
    (row,) = await credential_rows(bot)
    resolved = await credential_store(bot.engine, bot.runtime.settings).resolve("github-default", owner="U42")
    assert resolved["access_token"] == "user-token-2"
    assert (await entries(bot.engine, limit=1))[0].action == "credential-replace"


async def test_an_expired_state_is_refused(bot: Bot, github: Provider) -> None:
    link = link_of(await command(bot, "connect github"))
    async with sessionmaker(bot.engine)() as session, session.begin():
        await session.execute(update(OAuthStateRow).values(created_at=utcnow() - timedelta(minutes=11)))
    page = await bot.http.get(await authorize(bot, link))
    assert page.status_code == 400 and "older than ten minutes" in page.text and "/flow connect github" in page.text
    assert github.http.calls(TOKEN_PATH, "POST") == []
    assert await credential_rows(bot) == []


async def test_a_named_credential_and_a_refused_code(bot: Bot, github: Provider) -> None:
    assert (await connect(bot, text="connect GitHub work-gh")).status_code == 200
    (row,) = await credential_rows(bot)
    assert (row.name, row.owner) == ("work-gh", "U42")
    # the provider refuses the code (it was used already): a clear page, nothing stored
    link = link_of(await command(bot, "connect github", user="U7"))
    callback = await authorize(bot, link)
    github.oauth.expire_codes()
    page = await bot.http.get(callback)
    assert page.status_code == 502 and "GitHub refused the authorization (invalid_grant)" in page.text
    assert [r.owner for r in await credential_rows(bot)] == ["U42"]


async def test_runs_use_the_triggering_users_own_token_and_others_the_shared_one(bot: Bot, github: Provider) -> None:
    github.github.add_file("acme/api", "README.md", b"# Acme\n")
    await credential_store(bot.engine, bot.runtime.settings).add(
        "github-default", provider="github", secret=SHARED_TOKEN, actor="test", base_url=github.github.base_url
    )
    assert (await connect(bot, user="U42")).status_code == 200
    await bot.apply(READ_README)
    contents = github.github.contents_path("acme/api", "README.md")
    seen: dict[str, str] = {}
    for user in ("U42", "U7"):
        headers, body = slash_command("run readme", user=user, channel=f"C-{user}")
        assert (await bot.post(headers, body)).status_code == 200
        await apoll_until(
            lambda user=user: bool(bot.slack.channel_messages(f"C-{user}")), message=f"{user}'s run message"
        )
        await bot.settle()
        (request,) = github.http.calls(contents)[len(seen) :]
        seen[user] = request.headers["authorization"]
    assert seen == {"U42": "token user-token-1", "U7": f"token {SHARED_TOKEN}"}
    records = await RunStore(bot.engine).list(limit=2)
    assert {(r.triggered_by, r.status) for r in records} == {("slack:U42", "completed"), ("slack:U7", "completed")}


async def test_connect_mistakes_say_what_to_type(bot: Bot, github: Provider, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = await command(bot, "connect")
    assert "Usage: `/flow connect PROVIDER [NAME]`" in usage["text"] and "`github`" in usage["text"]
    unknown = await command(bot, "connect gitlab")
    assert "I can't connect `gitlab`" in unknown["text"] and "Connectable here: `github`." in unknown["text"]
    monkeypatch.delenv("SWITCHBOARD_OAUTH_GITHUB_CLIENT_ID")
    configured = bot.runtime.settings
    bot.runtime.settings = configured.with_current_environment()  # restarted without the client id
    none = await command(bot, "connect github")
    assert "SWITCHBOARD_OAUTH_<PROVIDER>_CLIENT_ID" in none["text"]
    bot.runtime.settings = configured
    bad_name = await command(bot, "connect github 'no spaces'")
    assert "is not a credential name" in bad_name["text"] and "`/flow connect github`" in bad_name["text"]
    monkeypatch.setattr(bot.runtime.settings, "public_url", None)
    no_url = await command(bot, "connect github")
    assert "the operator must set `SWITCHBOARD_PUBLIC_URL`" in no_url["text"]
    assert "/flow connect PROVIDER [NAME]" in (await command(bot, "help"))["text"]
    async with sessionmaker(bot.engine)() as session:
        assert list((await session.execute(select(OAuthStateRow))).scalars()) == []
