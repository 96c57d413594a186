"""Slack nodes: post a message, optionally as a reply in the run's Slack thread.

All HTTP goes through :data:`SLACK` (:class:`nodes.rest.RestProvider`): the credential's bot
token as ``Authorization: Bearer``, its ``base_url`` or ``https://slack.com/api/``; timeouts,
connection errors, HTTP 429 (``Retry-After`` honoured) and 5xx are ``TransientError``
(:mod:`nodes.provider_errors`, like every provider).

Slack answers most failures with HTTP 200 and ``{"ok": false, "error": "<code>"}``;
:func:`raise_for_error` classifies those codes (Slack's own rule) and builds the node error
with :func:`nodes.provider_errors.error_of_kind`:

* ``ratelimited``/``rate_limited``, ``internal_error``, ``service_unavailable``,
  ``team_added_to_org`` -> ``TransientError`` (retried);
* ``invalid_auth``, ``not_authed``, ``token_revoked``, ``token_expired``,
  ``account_inactive`` -> ``AuthError`` naming the credential to reconnect;
* anything else (``channel_not_found``, ``not_in_channel``, ``invalid_blocks``,
  ``missing_scope`` ...) -> ``ProviderError`` with Slack's code and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.params import Params
from nodes.provider_errors import error_of_kind
from nodes.providers import Provider, register_provider
from nodes.registry import node
from nodes.rest import RestProvider, try_json

DESCRIPTOR = register_provider(
    Provider(name="slack", title="Slack", base_url="https://slack.com/api/", nodes="slack.*")
)
PROVIDER = DESCRIPTOR.name
DEFAULT_BASE_URL = DESCRIPTOR.base_url
#: Slack renders at most 50 blocks in one message.
MAX_BLOCKS = 50

SLACK = RestProvider(DESCRIPTOR)

TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "service_unavailable", "team_added_to_org"}
)
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})


def _hint(code: str, body: Mapping[str, Any]) -> str | None:
    """What to do about a permanent Slack error, in words (None: nothing useful to add)."""
    if code == "missing_scope":
        return f"add the {body.get('needed') or 'needed'} scope to the Slack app and reinstall it"
    if code in ("invalid_blocks", "invalid_blocks_format"):
        details = (body.get("response_metadata") or {}).get("messages") or []
        why = "; ".join(str(d) for d in details[:3])
        return "Slack rejected `blocks`" + (f" ({why})" if why else "") + "; check them in Block Kit Builder"
    return {
        "channel_not_found": "no such channel for the bot: use the channel id (C…) or name, "
        "and invite the bot to a private channel",
        "not_in_channel": "the bot is not in that channel: invite it (/invite @your-bot) "
        "or give the app the chat:write.public scope",
        "is_archived": "the channel is archived",
        "msg_too_long": "the message text is too long: shorten `text`",
        "no_text": "the message is empty: give `text`",
        "too_many_blocks": f"at most {MAX_BLOCKS} blocks fit in one message",
        "restricted_action": "a workspace setting keeps the bot from posting there",
        "restricted_action_read_only_channel": "the channel is read-only",
        "restricted_action_thread_only_channel": "the channel takes thread replies only: use `thread: run`",
        "restricted_action_non_threadable_channel": "the channel takes no thread replies: use `thread: none`",
        "thread_not_found": "the run's Slack message is gone: use `thread: none`",
    }.get(code)


def raise_for_error(ctx: NodeContext, body: Any, *, channel: str, retry_after: str | None = None) -> None:
    """Raise the node error for a Slack ``{"ok": false, "error": ...}`` answer (``ok: true`` passes)."""
    if isinstance(body, Mapping) and body.get("ok") is True:
        return
    details: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    code = str(details.get("error") or "unknown_error") if details else "not_json"
    headers = {"retry-after": retry_after} if retry_after else {}
    if code in TRANSIENT_ERRORS:
        raise error_of_kind("transient", PROVIDER, code, headers=headers)
    if code in AUTH_ERRORS:
        raise error_of_kind("auth", PROVIDER, code, credential=ctx.credential_name)
    hint = _hint(code, details)
    raise error_of_kind("permanent", PROVIDER, f"{code} (channel '{channel}')" + (f": {hint}" if hint else ""))


async def request(ctx: NodeContext, method: str, args: Mapping[str, Any], *, channel: str) -> dict[str, Any]:
    """One Web API method (JSON POST); returns Slack's answer when it says ``ok: true``."""
    response = await SLACK.request(ctx, "POST", method, json=dict(args))
    body = try_json(response)
    raise_for_error(ctx, body, channel=channel, retry_after=response.headers.get("retry-after"))
    return dict(body)


class PostMessageParams(Params):
    channel: str = Field(
        min_length=1,
        description="Channel id (C…/G…/D…) or name (#ops) to post in. With `thread: run` on a run the "
        "Slack bot started, the reply goes to the run's thread instead, and this channel is used only "
        "by runs without one (CLI, schedule).",
    )
    text: str = Field(
        min_length=1,
        description="The message text (Slack mrkdwn); the notification text when `blocks` are given.",
    )
    blocks: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_BLOCKS,
        description=f"Block Kit blocks (at most {MAX_BLOCKS}), sent as they are.",
    )
    thread: Literal["run", "none"] = Field(
        default="none",
        description="`run`: reply in the thread of the run's Slack message (top-level in `channel` when "
        "the run has none); `none`: a new top-level message.",
    )


class PostMessageOutput(BaseModel):
    channel: str = Field(description="The id of the channel the message went to.")
    ts: str = Field(description="The message's timestamp id (for replies and updates).")
    thread_ts: str | None = Field(
        description="The thread the message replies in; null for a top-level message (also when "
        "`thread: run` found no run thread)."
    )


@node("slack.post_message", credential="slack")
async def post_message(ctx: NodeContext, params: PostMessageParams) -> PostMessageOutput:
    """Post a message to a Slack channel, or as a reply in the run's Slack thread.

    Needs a `slack` credential holding the bot token (xoxb-…) with the chat:write scope;
    chat:write.public lets it post in public channels it was not invited to.
    """
    channel, thread_ts = params.channel, None
    if params.thread == "run":
        if ctx.run.slack_thread is not None:
            channel, thread_ts = ctx.run.slack_thread
        else:
            ctx.logger.info("run %s has no Slack thread; posting top-level in %s", ctx.run.id, channel)
    args: dict[str, Any] = {"channel": channel, "text": params.text}
    if params.blocks is not None:
        args["blocks"] = params.blocks
    if thread_ts is not None:
        args["thread_ts"] = thread_ts
    body = await request(ctx, "chat.postMessage", args, channel=channel)
    return PostMessageOutput(channel=str(body.get("channel") or channel), ts=str(body["ts"]), thread_ts=thread_ts)
