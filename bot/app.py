"""The Bolt app: request verification, the slash command, run buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import approvals, commands
from bot.blocks import escape
from bot.runtime import BotRuntime

Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]


class BotConfigError(RuntimeError):
    """The bot cannot start: a Slack setting is missing."""


def create_app(runtime: BotRuntime, *, socket_mode: bool = False) -> AsyncApp:
    """A Bolt ``AsyncApp`` for a single workspace (bot token and signing secret from settings).

    ``socket_mode``: requests come over Slack's WebSocket, which Bolt does not verify by
    signature, so the signing secret is not required.
    """
    settings = runtime.settings
    secret = settings.slack_signing_secret
    if secret is None and not socket_mode:
        raise BotConfigError("set SLACK_SIGNING_SECRET (the app's Basic Information page) to verify requests")
    app = AsyncApp(
        client=runtime.client,
        signing_secret=secret.get_secret_value() if secret is not None else "",
        process_before_response=False,
    )
    commands.register(app, runtime)
    register_run_buttons(app, runtime)
    approvals.register(app, runtime)
    return app


def register_run_buttons(app: AsyncApp, runtime: BotRuntime) -> None:
    """Cancel and Retry on a run's message; the Prefect link button only needs an ack."""

    @app.action("open_prefect")
    async def on_open(ack: Ack) -> None:
        await ack()

    @app.action("cancel_run")
    async def on_cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        run_id = body["actions"][0]["value"]
        why_not = await runtime.cancel(run_id, user=body["user"]["id"])
        if why_not:
            await respond(text=escape(why_not), response_type="ephemeral", replace_original=False)

    @app.action("retry_run")
    async def on_retry(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        run_id = body["actions"][0]["value"]
        text = await runtime.retry(run_id, user=body["user"]["id"], channel=body["channel"]["id"])
        if text:
            await respond(text=text, response_type="ephemeral", replace_original=False)
