"""Mentions and direct messages: ``@Switchboard run NAME key=value`` in a channel, or the same
in a DM to the bot, behaves as ``/flow run`` — the same parser, permission checks, refusals and
live run message — with the run's message posted as a reply in the mentioning message's thread.

Slack delivers an event again when the bot was slow to acknowledge it (``X-Slack-Retry-Num``),
signed anew; each ``event_id`` is claimed in the replay guard, so a retried mention starts
nothing. Refusals and help go to the person only (an ephemeral reply in the thread). Messages
from bots (this one included) and edited or deleted messages are ignored. A mention cannot
open the inputs form (events carry no trigger id): missing inputs are listed instead.
"""

from __future__ import annotations

import logging
import re
import shlex
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import CommandError, run_command
from bot.runtime import BotRuntime

logger = logging.getLogger(__name__)

#: The leading mention(s) of the bot in an ``app_mention``'s text.
_LEADING_MENTIONS = re.compile(r"^\s*(?:<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")
#: How long an event id is remembered (Slack retries within minutes).
EVENT_MEMORY_SECONDS = 3600
#: The longest text read from a mention.
MAX_TEXT = 4000


def usage(runtime: BotRuntime) -> str:
    cmd = runtime.settings.slack_command
    return f"Mention me with `run NAME key=value ...` to run a workflow here (everything else: `{cmd} help`)."


def register(app: AsyncApp, runtime: BotRuntime) -> None:
    """Listen to ``app_mention`` (channels) and ``message`` events of DMs (``channel_type: im``)."""

    @app.event("app_mention")
    async def on_mention(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        await handle(runtime, body, event, client)

    @app.event("message")
    async def on_message(body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("channel_type") == "im":
            await handle(runtime, body, event, client)


async def handle(runtime: BotRuntime, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
    """Run what a mention or DM asks for, replying in its thread."""
    if event.get("bot_id") or event.get("subtype") or not isinstance(event.get("user"), str):
        return
    user, channel, ts = event["user"], event.get("channel"), event.get("ts")
    if not isinstance(channel, str) or not isinstance(ts, str):
        return
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        claimed = await runtime.core.slack.replays().claim(
            f"slack-event:{event_id[:100]}", until=int(time.time()) + EVENT_MEMORY_SECONDS
        )
        if not claimed:
            logger.info("ignored Slack's redelivery of event %s", event_id[:100])
            return
    thread_ts = event.get("thread_ts") if isinstance(event.get("thread_ts"), str) else ts

    async def reply(text: str) -> None:
        await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)

    text = _LEADING_MENTIONS.sub("", str(event.get("text") or "")[:MAX_TEXT]).strip()
    try:
        words = shlex.split(text)
    except ValueError as exc:
        await reply(f"I could not read that ({exc}); check the quotes.")
        return
    if not words or words[0].lower() != "run":
        await reply(usage(runtime))
        return
    team = body.get("team_id") or event.get("team")
    command = {"user_id": user, "channel_id": channel, "team_id": team, "thread_ts": thread_ts, "trigger_id": None}

    async def respond(text: str, **_: Any) -> None:
        await reply(text)

    try:
        await run_command(runtime, command, words[1:], respond, client, runtime.access(user, client))
    except CommandError as exc:
        await reply(str(exc))
