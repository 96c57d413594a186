"""The Bolt app: request verification, the slash command, run buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot import commands
from bot.blocks import escape
from bot.runtime import BotRuntime

Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]


class BotConfigError(RuntimeError):
    """The bot cannot start: a Slack setting is missing."""


def create_app(runtime: BotRuntime) -> AsyncApp:
    """A Bolt ``AsyncApp`` for a single workspace (bot token and signing secret from settings)."""
    settings = runtime.settings
    if settings.slack_signing_secret is None:
        raise BotConfigError("set SLACK_SIGNING_SECRET (the app's Basic Information page) to verify requests")
    app = AsyncApp(
        client=runtime.client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
    )
    commands.register(app, runtime)
    register_run_buttons(app, runtime)
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
        cancelled = await runtime.cancel(run_id)
        if not cancelled:
            await respond(
                text=f"Run `{escape(run_id)}` is not running here.", response_type="ephemeral", replace_original=False
            )

    @app.action("retry_run")
    async def on_retry(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        await ack()
        run_id = body["actions"][0]["value"]
        text = await runtime.retry(run_id, user=body["user"]["id"], channel=body["channel"]["id"])
        if text:
            await respond(text=text, response_type="ephemeral", replace_original=False)
