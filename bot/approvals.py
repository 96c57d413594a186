"""Approvals in Slack (``core.approval``): the buttons, who may answer, resuming the run.

When an approval node pauses its run, the runner emits a ``waiting`` node event; the bot's
run listener hands it to :class:`ApprovalDesk`, which posts the question with Approve and
Reject buttons and an optional comment field — an ``input`` block inside the message, read
from the click's ``state`` (no modal round trip) — as a reply in the run's thread, or in the
workflow's ``notify`` channel when the run has no thread. A permitted approver's click resumes
the Prefect flow run with ``{approved, by, comment}`` and turns the buttons into who decided;
anyone else gets an ephemeral refusal and an audit-log row. When the node ends without a
click (timeout, an answer given in the Prefect UI) the message says so.

Who may answer: the node's ``approvers``, else the workflow's ``permissions.approve``, else
admins only; admins always; never the person who started the run unless ``allow_self`` (four
eyes: that holds for admins too). An approval exists from the ``waiting`` event on, but answers
are refused ("not ready yet") until the desk knows who started the run and who may answer —
before the question is posted — so no click can slip past the self-approval rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import escape
from bot.permissions import is_permitted
from bot.runtime import BotRuntime, WorkspaceNotInstalledError, workflow_of
from bot.threads import LiveThread
from flows import pauses
from flows.events import NodeEvent

logger = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[None]]

APPROVE = "approval_approve"
REJECT = "approval_reject"
COMMENT_BLOCK = "approval_comment"
COMMENT_ACTION = "comment"


@dataclass
class Approval:
    """One question a paused run is waiting on, and the Slack message that asks it."""

    id: str
    run_id: str
    node_id: str
    flow_run_id: str
    key: str
    message: str
    timeout: int
    allow_self: bool
    approvers: list[str] = field(default_factory=list)
    workflow: str = ""
    #: The Slack user who started the run (None: a webhook or schedule started it).
    started_by: str | None = None
    #: Whether who started the run and who may answer are known: until then every click is
    #: refused (the self-approval rule cannot be checked without the starter).
    ready: bool = False
    channel: str | None = None
    thread_ts: str | None = None
    ts: str | None = None
    #: Who is answering right now (a click being applied), and the final word once there is one.
    answering: str | None = None
    outcome: str | None = None
    posting: asyncio.Task[None] | None = None
    #: Posts and updates the question (its workspace's token; None: the runtime's client).
    client: AsyncWebClient | None = None


def mention(entry: str) -> str:
    """A Slack id as a mention: user, user group or channel."""
    if entry.startswith("S"):
        return f"<!subteam^{entry}>"
    if entry.startswith(("C", "G")):
        return f"<#{entry}>"
    return f"<@{entry}>"


def who_may_answer(approval: Approval) -> str:
    names = ", ".join(mention(e) for e in approval.approvers) or "Switchboard admins"
    return names + ("" if approval.allow_self or not approval.started_by else f" (not <@{approval.started_by}>)")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:2900]}]}


def _seconds(timeout: int) -> str:
    if timeout % 3600 == 0:
        return f"{timeout // 3600} h"
    return f"{timeout // 60} min" if timeout % 60 == 0 else f"{timeout} s"


def question_message(approval: Approval) -> tuple[str, list[dict[str, Any]]]:
    """The text and blocks asking for an answer: the question, who may answer, a comment
    field and the Approve / Reject buttons (their value is the approval's id)."""
    text = f"Approval needed: {approval.message}"
    blocks = [
        _section(
            f":raised_hand: *Approval needed* — `{escape(approval.node_id)}` of *{escape(approval.workflow)}*\n"
            + escape(approval.message)
        ),
        _context(
            f"Who may answer: {who_may_answer(approval)} · waits up to {_seconds(approval.timeout)}"
            f" · run `{approval.run_id}`"
        ),
        {
            "type": "input",
            "block_id": COMMENT_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Comment (optional)"},
            "element": {"type": "plain_text_input", "action_id": COMMENT_ACTION, "multiline": True},
        },
        {
            "type": "actions",
            "block_id": "approval_actions",
            "elements": [
                _button(APPROVE, "Approve", approval.id, "primary"),
                _button(REJECT, "Reject", approval.id, "danger"),
            ],
        },
    ]
    return text, blocks


def answered_message(approval: Approval, outcome: str) -> tuple[str, list[dict[str, Any]]]:
    """The question once it is settled: no buttons, the outcome instead."""
    blocks = [
        _section(
            f"*Approval* — `{escape(approval.node_id)}` of *{escape(approval.workflow)}*\n" + escape(approval.message)
        ),
        _section(outcome),
    ]
    return f"Approval: {outcome}", blocks


def _button(action_id: str, label: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
        "style": style,
    }


def decision_text(approved: bool, by: str, comment: str | None) -> str:
    verdict = ":white_check_mark: *Approved*" if approved else ":no_entry: *Rejected*"
    said = f": “{escape(comment)}”" if comment else ""
    return f"{verdict} by <@{by}>{said}"


def comment_of(body: dict[str, Any]) -> str | None:
    """The comment field's text from a click's ``state`` (None when left empty)."""
    values = (body.get("state") or {}).get("values") or {}
    value = ((values.get(COMMENT_BLOCK) or {}).get(COMMENT_ACTION) or {}).get("value")
    text = str(value or "").strip()
    return text or None


@dataclass
class ApprovalDesk:
    """The approvals the bot's runs are waiting on (in this process)."""

    runtime: BotRuntime
    open: dict[str, Approval] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # --- run events -----------------------------------------------------------------------

    def on_event(self, thread: LiveThread | None, event: NodeEvent) -> None:
        """A run hook (``BotRuntime.event_hooks``): ask on ``waiting``, settle on ``finished``."""
        request = event.request or {}
        if event.kind == "waiting" and request.get("kind") == "approval" and event.flow_run_id:
            # The run's live message knows its starter now; the workflow (for the approvers)
            # is read by _ask, which marks the approval ready.
            approval = Approval(
                id=f"{event.run_id}:{request['key']}",
                run_id=event.run_id,
                node_id=event.node_id,
                flow_run_id=event.flow_run_id,
                key=str(request["key"]),
                message=str(request.get("message", "")),
                timeout=int(request.get("timeout", 0)),
                allow_self=bool(request.get("allow_self")),
                approvers=list(request.get("approvers") or []),
                started_by=thread.view.user if thread is not None else None,
            )
            self.open[approval.id] = approval
            approval.posting = self._spawn(self._ask(approval, thread))
        elif event.kind == "finished":
            for approval in [a for a in self.open.values() if (a.run_id, a.node_id) == (event.run_id, event.node_id)]:
                self._spawn(self._settle(approval, event))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _ask(self, approval: Approval, thread: LiveThread | None) -> None:
        runtime = self.runtime
        team: str | None = None
        try:
            if thread is not None:
                name, version, started_by = thread.view.workflow, thread.view.version, thread.view.user
            else:
                record = await runtime.core.runs.record(approval.run_id)
                name, version = record.workflow, record.version
                by = record.triggered_by or ""
                started_by = by.removeprefix("slack:") if by.startswith("slack:") else None
                team = record.slack_team
            workflow = workflow_of(await runtime.core.workflows.get(name, version))
        except Exception:
            logger.exception("approval %s: could not read its run's workflow; nobody was asked", approval.id)
            return
        approval.workflow, approval.started_by = workflow.name, started_by
        if not approval.approvers and workflow.permissions:
            approval.approvers = list(workflow.permissions.approve)
        approval.ready = True  # before anyone can see the buttons
        if thread is not None and thread.ts is not None:
            approval.channel, approval.thread_ts = thread.channel, thread.root
        elif workflow.notify is not None:
            approval.channel = workflow.notify.channel
        else:
            logger.warning("approval %s: the run has no Slack thread and %s no notify channel", approval.id, name)
            return
        try:
            approval.client = thread.client if thread is not None else await runtime.client_for(team)
        except WorkspaceNotInstalledError as exc:
            logger.warning("approval %s: nobody was asked: %s", approval.id, exc)
            return
        text, blocks = question_message(approval)
        await asyncio.sleep(runtime.pacer.reserve(approval.channel))
        try:
            response = await approval.client.chat_postMessage(
                channel=approval.channel, thread_ts=approval.thread_ts, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            logger.warning("approval %s: could not post to %s: %s", approval.id, approval.channel, exc)
            return
        approval.ts = str(response["ts"])

    async def _settle(self, approval: Approval, event: NodeEvent) -> None:
        """The node ended: say how, unless a click already did."""
        if approval.posting is not None:
            await approval.posting
        self.open.pop(approval.id, None)
        if approval.outcome is not None or approval.answering is not None:
            return  # a click said it (or is about to)
        result = event.result
        if result is None or result.status != "completed":
            reason = (result.error if result else None) or "the node ended without an answer"
            outcome = f":hourglass: *Not answered* — {escape(reason)}"
        else:
            output = result.output if isinstance(result.output, dict) else {}
            outcome = decision_text(bool(output.get("approved")), str(output.get("by", "?")), output.get("comment"))
            outcome += " (answered outside Slack)"
        await self._show(approval, outcome)

    async def _show(self, approval: Approval, outcome: str) -> None:
        approval.outcome = outcome
        if approval.channel is None or approval.ts is None:
            return
        text, blocks = answered_message(approval, outcome)
        await asyncio.sleep(self.runtime.pacer.reserve(approval.channel))
        try:
            client = approval.client or self.runtime.client
            await client.chat_update(channel=approval.channel, ts=approval.ts, text=text, blocks=blocks)
        except SlackApiError as exc:
            logger.warning("approval %s: could not update its message: %s", approval.id, exc)

    # --- clicks ---------------------------------------------------------------------------

    async def on_click(self, ack: Ack, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Approve / Reject: check who clicked, resume the run, show who decided."""
        await ack()
        action = body["actions"][0]
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", "")
        approval = self.open.get(str(action.get("value")))

        async def tell(text: str) -> None:
            thread_ts = approval.thread_ts if approval else None
            try:
                await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
            except SlackApiError as exc:
                logger.warning("could not tell %s in %s: %s", user, channel, exc)

        if approval is not None and approval.outcome is None and approval.run_id not in self.runtime.running:
            self.open.pop(approval.id, None)  # the run was cancelled or crashed while it waited
            await self._show(approval, ":no_entry_sign: *Not answered* — the run ended")
        if approval is None or approval.outcome is not None:
            await tell("This approval is no longer waiting for an answer.")
            return
        if not approval.ready:  # a click (forged, or replayed) before the question was asked
            await tell("This approval is not ready yet: try again in a moment.")
            return
        refusal = await self._refusal(approval, user, client)
        if refusal is not None:
            reason, text = refusal
            detail = {"run_id": approval.run_id, "node": approval.node_id, "reason": reason}
            await self.runtime.audit_refusal(user, "approve", approval.workflow, detail)
            await tell(text)
            return
        if approval.answering is not None:
            await tell(f"<@{approval.answering}> is answering this approval already.")
            return
        approved, comment = action["action_id"] == APPROVE, comment_of(body)
        approval.answering = user
        try:
            await pauses.answer(
                approval.flow_run_id, approval.key, {"approved": approved, "by": user, "comment": comment}
            )
        except pauses.NotWaitingError as exc:
            await tell(f"This approval is no longer waiting for an answer ({escape(str(exc))}).")
            if approval.id not in self.open and approval.outcome is None:  # it ended while we answered
                await self._show(approval, f":hourglass: *Not answered* — {escape(str(exc))}")
            return
        except Exception as exc:
            logger.exception("approval %s: resuming flow run %s failed", approval.id, approval.flow_run_id)
            await tell(f"Could not resume the run ({type(exc).__name__}); try again, or answer in the Prefect UI.")
            return
        finally:
            approval.answering = None
        await self._show(approval, decision_text(approved, user, comment))

    async def _refusal(self, approval: Approval, user: str, client: AsyncWebClient) -> tuple[str, str] | None:
        """Why ``user`` may not answer (an audit reason and what to tell them), or None."""
        admins = self.runtime.settings.slack_admin_ids
        if user == approval.started_by and not approval.allow_self:
            return "self", "You started this run, so someone else must approve it: " + who_may_answer(approval)
        permitted = (
            await is_permitted(client, user, approval.approvers, admins=admins)
            if approval.approvers
            else user in admins
        )
        if not permitted:
            return "not an approver", f"You may not answer this approval; ask {who_may_answer(approval)}."
        return None

    async def close(self) -> None:
        """Let the posts and updates in flight finish."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def register(app: AsyncApp, runtime: BotRuntime) -> ApprovalDesk:
    """Listen to the runtime's runs for approvals and attach the Approve / Reject handlers."""
    owners = [getattr(hook, "__self__", None) for hook in runtime.event_hooks]
    desks = [owner for owner in owners if isinstance(owner, ApprovalDesk)]
    desk = desks[0] if desks else ApprovalDesk(runtime)
    if not desks:  # one desk per runtime, however many apps serve it (HTTP and Socket Mode)
        runtime.event_hooks.append(desk.on_event)
    app.action(APPROVE)(desk.on_click)
    app.action(REJECT)(desk.on_click)
    return desk
