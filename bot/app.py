"""The Bolt app: request verification, the slash command, run buttons; in multi-workspace mode
the install flow (``GET /slack/install`` -> Slack -> ``GET /slack/oauth_redirect``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient

from bot import approvals, commands, mentions
from bot.runtime import BotRuntime

Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]


#: The shipped Slack app manifest: its bot scopes are what an install asks for.
MANIFEST = Path(__file__).with_name("slack-app-manifest.yaml")
#: Multi-workspace mode: where a workspace admin starts installing the app, and where Slack returns.
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


class BotConfigError(RuntimeError):
    """The bot cannot start: a Slack setting is missing."""


def create_app(runtime: BotRuntime, *, socket_mode: bool = False) -> AsyncApp:
    """A Bolt ``AsyncApp``: for a single workspace (bot token from settings), or, with the app's
    client id and secret, for every workspace that installs it (:func:`oauth_settings`).

    ``socket_mode``: requests come over Slack's WebSocket, which Bolt does not verify by
    signature, so the signing secret is not required.
    """
    settings = runtime.settings
    secret = settings.slack_signing_secret
    if secret is None and not socket_mode:
        raise BotConfigError("set SLACK_SIGNING_SECRET (the app's Basic Information page) to verify requests")
    if settings.slack_multi_workspace:
        app = AsyncApp(
            client=runtime.client,  # no token: oauth.v2.access, and the base of each workspace's client
            signing_secret=secret.get_secret_value() if secret is not None else "",
            process_before_response=False,
            oauth_settings=oauth_settings(runtime),
            user_facing_authorize_error_message=not_installed_text(runtime),
        )
        app.enable_token_revocation_listeners()  # app_uninstalled / tokens_revoked forget the tokens
    else:
        app = AsyncApp(
            client=runtime.client,
            signing_secret=secret.get_secret_value() if secret is not None else "",
            process_before_response=False,
        )
    commands.register(app, runtime)
    mentions.register(app, runtime)
    register_run_buttons(app, runtime)
    approvals.register(app, runtime)
    return app


def bot_scopes() -> list[str]:
    """The bot scopes of the shipped manifest (what an install asks for)."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    return [str(scope) for scope in manifest["oauth_config"]["scopes"]["bot"]]


def oauth_settings(runtime: BotRuntime) -> AsyncOAuthSettings:
    """Bolt's install flow on our database: installations (tokens encrypted) and single-use states.

    ``GET /slack/install`` redirects to Slack's authorize page (``SWITCHBOARD_SLACK_OAUTH_URL``);
    Slack sends the browser back to ``GET /slack/oauth_redirect``, whose code is exchanged through
    ``oauth.v2.access`` on the Web API base URL (``SWITCHBOARD_SLACK_API_URL``).
    """
    settings = runtime.settings
    if not settings.slack_client_id or settings.slack_client_secret is None or runtime.installations is None:
        raise BotConfigError("set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (the app's Basic Information page)")
    public = settings.public_url
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=bot_scopes(),
        user_scopes=[],
        redirect_uri=public.rstrip("/") + REDIRECT_PATH if public else None,
        install_path=INSTALL_PATH,
        install_page_rendering_enabled=False,  # straight to Slack
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=settings.slack_oauth_url,
        installation_store=runtime.installations,
        installation_store_bot_only=True,
        state_store=runtime.core.slack.install_states(),
    )


def not_installed_text(runtime: BotRuntime) -> str:
    """What a user of a workspace without an installation is told."""
    public = runtime.settings.public_url
    where = f"<{public.rstrip('/')}{INSTALL_PATH}>" if public else f"the bot's `{INSTALL_PATH}` page"
    return f"Switchboard is not installed in this workspace (or was removed). An admin can install it from {where}."


def register_run_buttons(app: AsyncApp, runtime: BotRuntime) -> None:
    """Cancel and Retry on a run's message; the Prefect link button only needs an ack.

    The buttons' values are run ids, which a click can carry for any run: :meth:`BotRuntime.cancel`
    and :meth:`BotRuntime.retry` check the clicker's permissions before saying anything about it.
    """

    @app.action("open_prefect")
    async def on_open(ack: Ack) -> None:
        await ack()

    @app.action("cancel_run")
    async def on_cancel(ack: Ack, body: dict[str, Any], respond: Respond, client: AsyncWebClient) -> None:
        await ack()
        run_id = body["actions"][0]["value"]
        why_not = await runtime.cancel(run_id, user=body["user"]["id"], client=client)
        if why_not:  # already mrkdwn-safe
            await respond(text=why_not, response_type="ephemeral", replace_original=False)

    @app.action("retry_run")
    async def on_retry(ack: Ack, body: dict[str, Any], respond: Respond, client: AsyncWebClient) -> None:
        await ack()
        run_id = body["actions"][0]["value"]
        team = (body.get("team") or {}).get("id")
        text = await runtime.retry(
            run_id, user=body["user"]["id"], channel=body["channel"]["id"], client=client, team=team
        )
        if text:
            await respond(text=text, response_type="ephemeral", replace_original=False)
