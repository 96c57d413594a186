"""Connecting a user's own accounts: ``/flow connect PROVIDER [NAME]`` and the OAuth callback.

1. The command stores a random, single-use ``state`` (hashed, with the Slack user, provider,
   credential name and a PKCE verifier) and answers with a link to the provider's authorize
   page.
2. The provider sends the browser back to ``GET /oauth/{provider}/callback?code=&state=``: the
   state is consumed — only by the callback of the provider it was made for (unknown, used, older
   than ten minutes or made for another provider → 400 "run connect again") — the
   code is traded at the provider's token URL, and the tokens are stored encrypted as the
   user's OWN credential ``NAME`` (default ``<provider>-default``), replacing an earlier one.
   Runs the user triggers from Slack resolve that name to it before the shared credential.
3. The browser gets a "connected" page; the user gets a Slack message.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from bot.blocks import escape
from bot.runtime import BotRuntime
from switchboard.oauth_settings import OAuthProvider, known_oauth_providers
from switchboard.providers import title
from switchboard.slack_records import STATE_TTL, PendingAuthorization

logger = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]

CALLBACK_PATH = "/oauth/{provider}/callback"
CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TOKEN_TIMEOUT_SECONDS = 15.0


class TokenExchangeError(Exception):
    """The provider would not trade the code for tokens; the message is safe to show."""


def default_credential_name(provider: str) -> str:
    """The credential name ``/flow connect PROVIDER`` stores under (what nodes name in ``credential:``)."""
    return f"{provider}-default"


def redirect_uri(public_url: str, provider: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH.format(provider=provider)


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_link(provider: OAuthProvider, *, state: str, redirect: str, verifier: str) -> str:
    """The provider's authorize URL for one pending authorization."""
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect,
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
        **provider.authorize_params,
    }
    if provider.scopes:
        query["scope"] = " ".join(provider.scopes)
    separator = "&" if "?" in provider.authorize_url else "?"
    return provider.authorize_url + separator + urlencode(query)


def _providers_hint(runtime: BotRuntime) -> str:
    configured = runtime.settings.oauth_providers()
    if configured:
        return "Connectable here: " + ", ".join(f"`{name}`" for name in configured) + "."
    known = ", ".join(known_oauth_providers())
    return (
        "No provider is set up for connecting yet: the operator sets "
        f"`SWITCHBOARD_OAUTH_<PROVIDER>_CLIENT_ID` and `_CLIENT_SECRET` (for {known})."
    )


async def connect_command(runtime: BotRuntime, body: dict[str, Any], args: list[str], respond: Respond) -> None:
    """``/flow connect PROVIDER [NAME]``: answer the user (ephemerally) with their authorize link."""
    cmd = runtime.settings.slack_command

    async def say(text: str, **extra: Any) -> None:
        await respond(text=text, response_type="ephemeral", **extra)

    if not 1 <= len(args) <= 2:
        await say(f"Usage: `{cmd} connect PROVIDER [NAME]`, e.g. `{cmd} connect github`. {_providers_hint(runtime)}")
        return
    name = args[0].lower()
    provider = runtime.settings.oauth_provider(name)
    if provider is None:
        await say(f"I can't connect `{escape(args[0])}`. {_providers_hint(runtime)}")
        return
    credential = args[1] if len(args) == 2 else default_credential_name(name)
    if not CREDENTIAL_NAME.match(credential):
        await say(
            f"`{escape(credential)}` is not a credential name (letters, digits, `-`, `_`, `.`). "
            f"Type `{cmd} connect {name}` to use `{default_credential_name(name)}`."
        )
        return
    public_url = runtime.settings.public_url
    if not public_url:
        await say(
            "Connecting accounts needs the bot's public address: the operator must set "
            "`SWITCHBOARD_PUBLIC_URL` (e.g. `https://switchboard.example.com`) and restart the bot."
        )
        return
    state, pending = await runtime.core.slack.oauth_states().create(
        slack_user=body["user_id"], slack_team=body.get("team_id"), provider=name, credential=credential
    )
    link = authorize_link(
        provider, state=state, redirect=redirect_uri(public_url, name), verifier=pending.code_verifier
    )
    minutes = int(STATE_TTL.total_seconds() // 60)
    text = (
        f"<{link}|Connect your {title(name)} account> (the link works once, for {minutes} minutes). "
        f"Your runs will then use it as credential `{escape(credential)}` instead of the shared one."
    )
    await say(text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def page(heading: str, message: str, *, status: int = 200) -> HTMLResponse:
    """A small HTML page for the browser that followed the provider's redirect."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Switchboard</title></head>"
        "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
        f"<h1>{html.escape(heading)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    # the URL carried a code: keep it out of caches and out of Referer headers
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(body, status_code=status, headers=headers)


async def exchange_code(provider: OAuthProvider, *, code: str, redirect: str, verifier: str) -> dict[str, Any]:
    """Trade an authorization code for tokens at the provider's token URL."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret.get_secret_value(),
        "code_verifier": verifier,
    }
    try:
        async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT_SECONDS) as http:
            response = await http.post(provider.token_url, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TokenExchangeError(f"{title(provider.name)} could not be reached ({type(exc).__name__})") from None
    payload = _token_payload(response)
    if response.status_code >= 400 or "error" in payload or not payload.get("access_token"):
        reason = str(payload.get("error") or f"HTTP {response.status_code}")[:100]
        raise TokenExchangeError(f"{title(provider.name)} refused the authorization ({reason})")
    return payload


def _token_payload(response: httpx.Response) -> dict[str, Any]:
    """The token response as a dict (JSON, or the form encoding some providers answer with)."""
    if "json" in response.headers.get("content-type", ""):
        try:
            data = response.json()
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}
    return dict(parse_qsl(response.text))


def oauth_material(provider: OAuthProvider, tokens: dict[str, Any]) -> dict[str, Any]:
    """What the credential stores: the tokens plus what :class:`CredentialStore` needs to refresh."""
    material: dict[str, Any] = {
        "access_token": tokens["access_token"],
        "client_id": provider.client_id,
        "client_secret": provider.client_secret.get_secret_value(),
        "token_url": provider.token_url,
    }
    if tokens.get("refresh_token"):
        material["refresh_token"] = tokens["refresh_token"]
    if tokens.get("token_type"):
        material["token_type"] = tokens["token_type"]
    if tokens.get("expires_in"):
        material["expires_at"] = (datetime.now(UTC) + timedelta(seconds=float(tokens["expires_in"]))).isoformat()
    return material


def granted_scopes(provider: OAuthProvider, tokens: dict[str, Any]) -> list[str]:
    """The scopes the provider says it granted (GitHub: comma-separated), else those asked for."""
    granted = tokens.get("scope")
    if isinstance(granted, str) and granted.strip():
        return granted.replace(",", " ").split()
    return list(provider.scopes)


def routes(runtime: BotRuntime) -> list[Route]:
    """The OAuth callback route of the bot's web app."""
    cmd = runtime.settings.slack_command

    async def callback(request: Request) -> Response:
        name = request.path_params["provider"]
        again = f"Run `{cmd} connect {name}` in Slack again to get a new link."
        state = request.query_params.get("state", "")
        # Only a state made for this provider is consumed: one made for another provider, brought
        # here by mistake or on purpose, stays usable at its own callback.
        pending = await runtime.core.slack.oauth_states().consume(state, provider=name) if state else None
        if pending is None:
            return page(
                "This link has expired",
                f"It was already used, is older than ten minutes, or is not ours. {again}",
                status=400,
            )
        denied = request.query_params.get("error")
        if denied:
            return page("Not connected", f"{title(name)} did not grant access ({denied[:100]}). {again}", status=400)
        code = request.query_params.get("code", "")
        provider = runtime.settings.oauth_provider(name)
        public_url = runtime.settings.public_url
        if not code or provider is None or not public_url:
            reason = "no authorization code came back" if not code else "the bot's OAuth settings changed"
            return page("Not connected", f"{reason.capitalize()}. {again}", status=400)
        try:
            tokens = await exchange_code(
                provider, code=code, redirect=redirect_uri(public_url, name), verifier=pending.code_verifier
            )
        except TokenExchangeError as exc:
            logger.warning("connecting %s for %s failed: %s", name, pending.slack_user, exc)
            return page("Not connected", f"{exc}. {again}", status=502)
        await store_credential(runtime, pending, provider, tokens)
        await notify(runtime, pending)
        return page(f"{title(name)} is connected", "You can close this tab and go back to Slack.")

    return [Route(CALLBACK_PATH, callback, methods=["GET"])]


async def store_credential(
    runtime: BotRuntime, pending: PendingAuthorization, provider: OAuthProvider, tokens: dict[str, Any]
) -> None:
    """Store the tokens, encrypted, as the user's own credential (replacing an earlier one)."""
    await runtime.core.credentials.add(
        pending.credential,
        provider=pending.provider,
        secret=json.dumps(oauth_material(provider, tokens)),
        actor=f"slack:{pending.slack_user}",
        owner=pending.slack_user,
        base_url=provider.api_url,
        scopes=granted_scopes(provider, tokens),
        replace=True,
    )


async def notify(runtime: BotRuntime, pending: PendingAuthorization) -> None:
    """Tell the user in Slack (a direct message from the bot) that the account is connected."""
    text = (
        f":white_check_mark: Your {title(pending.provider)} account is connected as credential "
        f"`{escape(pending.credential)}`: the runs you start from Slack use it."
    )
    try:
        client = await runtime.client_for(pending.slack_team)
        await client.chat_postMessage(channel=pending.slack_user, text=text)
    except Exception:  # the credential is stored; a failed notice must not fail the page
        logger.exception("could not tell %s that %s is connected", pending.slack_user, pending.provider)
