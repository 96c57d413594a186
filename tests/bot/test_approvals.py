"""core.approval end to end: the run pauses in Prefect, Slack buttons answer it over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.states import State

import switchboard
from bot.approvals import APPROVE, COMMENT_ACTION, COMMENT_BLOCK, REJECT
from bot.threads import LiveThread
from flows.events import NodeEvent
from flows.results import NodeResult
from nodes.approval import ApprovalParams, approval
from nodes.context import NodeContext, RunInfo
from nodes.errors import NodeConfigError
from storage.audit import entries
from storage.runs import RunStore
from tests.bot.test_commands import block_text
from tests.fakes.slack import Message, block_action, interaction, slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

DEPLOY: dict[str, Any] = {
    "name": "deploy",
    "inputs": {"version": {"type": "string", "default": "1.2"}},
    "permissions": {"approve": ["UBOSS", "SREVIEW"]},
    "nodes": [
        {
            "id": "ask",
            "type": "core.approval",
            "params": {"message": "Ship {{ inputs.version }} to production?", "timeout": 120},
        },
        {
            "id": "decide",
            "type": "core.if",
            "params": {"condition": "{{ nodes.ask.output.approved }}"},
            "needs": ["ask"],
        },
        {
            "id": "ship",
            "type": "text.template",
            "params": {"template": "shipped {{ inputs.version }}, approved by {{ nodes.ask.output.by }}"},
            "needs": ["decide:true"],
        },
        {
            "id": "hold",
            "type": "text.template",
            "params": {"template": "held: {{ nodes.ask.output.comment }}"},
            "needs": ["decide:false"],
        },
    ],
}


async def flow_run_state(flow_run_id: str) -> State[Any]:
    async with get_client() as client:
        flow_run = await client.read_flow_run(UUID(flow_run_id))
    assert flow_run.state is not None
    return flow_run.state


async def until_paused(bot: Bot) -> str:
    """The flow run id of the bot's latest run, once Prefect shows it Paused."""
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert record.flow_run_id is not None
    flow_run_id = record.flow_run_id

    async def paused() -> bool:
        return (await flow_run_state(flow_run_id)).is_paused()

    await apoll_until(paused, interval=0.1, message="the run to pause in Prefect")
    return flow_run_id


def collect_results(bot: Bot) -> dict[str, NodeResult]:
    """Node results as the runner reports them to the bot (its ``finished`` events)."""
    results: dict[str, NodeResult] = {}

    def hook(thread: LiveThread | None, event: NodeEvent) -> None:
        if event.kind == "finished" and event.result is not None:
            results[event.node_id] = event.result

    bot.runtime.event_hooks.append(hook)
    return results


def approval_message(bot: Bot, channel: str) -> Message | None:
    replies = [m for m in bot.slack.channel_messages(channel) if m.thread_ts is not None]
    return replies[0] if replies else None


def run_message(bot: Bot, channel: str) -> Message:
    (message,) = [m for m in bot.slack.channel_messages(channel) if m.thread_ts is None]
    return message


async def click(bot: Bot, action_id: str, message: Message, *, user: str, comment: str | None = None) -> None:
    value = button_values[(message.channel, message.ts)]
    payload = block_action(action_id, value, user=user, channel=message.channel, message_ts=message.ts)
    if comment is not None:
        payload["state"] = {"values": {COMMENT_BLOCK: {COMMENT_ACTION: {"type": "plain_text_input", "value": comment}}}}
    headers, body = interaction(payload)
    response = await bot.post(headers, body)
    assert response.status_code == 200


#: The approval id on the buttons of each approval message.
button_values: dict[tuple[str, str], str] = {}


def ephemerals_to(bot: Bot, user: str) -> list[str]:
    return [c.args["text"] for c in bot.slack.calls("chat.postEphemeral") if c.args.get("user") == user]


async def start(bot: Bot, user: str, channel: str) -> Message:
    """Run ``deploy`` from Slack; returns the approval message once it is in the run's thread."""
    headers, body = slash_command("run deploy", user=user, channel=channel)
    assert (await bot.post(headers, body)).status_code == 200
    asked: Message = await apoll_until(lambda: approval_message(bot, channel), message="the approval message")
    buttons = next(b for b in asked.blocks if b["type"] == "actions")["elements"]
    button_values[(asked.channel, asked.ts)] = buttons[0]["value"]  # the message loses them once answered
    return asked


async def test_a_refused_click_keeps_the_run_paused_and_the_approvers_click_resumes_it(bot: Bot) -> None:
    await bot.apply(DEPLOY)
    results = collect_results(bot)
    asked = await start(bot, user="U1", channel="C1")

    run = run_message(bot, "C1")
    assert (asked.channel, asked.thread_ts) == ("C1", run.ts)
    shown = block_text(asked.blocks)
    assert "Ship 1.2 to production?" in shown and "<@UBOSS>, <!subteam^SREVIEW>" in shown
    kinds = [b["type"] for b in asked.blocks]
    assert "input" in kinds and "actions" in kinds  # the comment field and the buttons
    buttons = next(b for b in asked.blocks if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["text"]["text"]) for b in buttons] == [(APPROVE, "Approve"), (REJECT, "Reject")]
    flow_run_id = await until_paused(bot)
    await apoll_until(
        lambda: ":hourglass_flowing_sand: `ask`" in block_text(run_message(bot, "C1").blocks),
        message="`ask` waiting in the run message",
    )

    await click(bot, APPROVE, asked, user="U7")
    (refusal,) = await apoll_until(lambda: ephemerals_to(bot, "U7"), message="the refusal")
    assert "You may not answer this approval" in refusal and "<@UBOSS>" in refusal
    audit = await entries(bot.engine, limit=1)
    assert [(e.actor, e.action, e.target, e.detail["reason"]) for e in audit] == [
        ("slack:U7", "refused-approve", "deploy", "not an approver")
    ]
    await asyncio.sleep(1.5)  # longer than the paused run's poll interval
    assert (await flow_run_state(flow_run_id)).is_paused()
    assert "ask" not in results

    await click(bot, APPROVE, asked, user="UBOSS", comment="ship it")
    await bot.settle()
    assert results["ask"].output == {"approved": True, "by": "UBOSS", "comment": "ship it"}
    assert results["ship"].output == {"text": "shipped 1.2, approved by UBOSS"}
    assert results["hold"].status == "skipped"
    assert (await flow_run_state(flow_run_id)).is_completed()

    final = block_text(run_message(bot, "C1").blocks)
    assert "*completed*" in final and ":white_check_mark: `ask`" in final and "took " in final
    decided = await apoll_until(
        lambda: "Approved" in block_text(approval_message(bot, "C1").blocks),  # type: ignore[union-attr]
        message="the approval message to say Approved",
    )
    assert decided
    settled = approval_message(bot, "C1")
    assert settled is not None
    assert "*Approved* by <@UBOSS>: “ship it”" in block_text(settled.blocks)
    assert [b["type"] for b in settled.blocks] == ["section", "section"]  # no buttons left

    await click(bot, REJECT, asked, user="UBOSS")  # a late second answer
    late = await apoll_until(lambda: ephemerals_to(bot, "UBOSS"), message="the late answer's reply")
    assert "no longer waiting" in late[0]


async def test_a_rejection_takes_the_false_branch_and_the_starter_may_not_answer(bot: Bot) -> None:
    await bot.apply(DEPLOY)
    results = collect_results(bot)
    asked = await start(bot, user="UBOSS", channel="C2")  # an approver starts the run himself
    flow_run_id = await until_paused(bot)

    await click(bot, APPROVE, asked, user="UBOSS")
    (refusal,) = await apoll_until(lambda: ephemerals_to(bot, "UBOSS"), message="the self-approval refusal")
    assert "You started this run" in refusal
    (audit,) = await entries(bot.engine, limit=1)
    assert (audit.actor, audit.action, audit.detail["reason"]) == ("slack:UBOSS", "refused-approve", "self")
    assert (await flow_run_state(flow_run_id)).is_paused()

    await click(bot, REJECT, asked, user="UADMIN", comment="not on a Friday")  # an admin may answer
    await bot.settle()
    assert results["ask"].output == {"approved": False, "by": "UADMIN", "comment": "not on a Friday"}
    assert results["decide"].port == "false"
    assert results["hold"].output == {"text": "held: not on a Friday"}
    assert results["ship"].status == "skipped"
    assert (await flow_run_state(flow_run_id)).is_completed()
    await apoll_until(
        lambda: "*Rejected* by <@UADMIN>" in block_text(approval_message(bot, "C2").blocks),  # type: ignore[union-attr]
        message="the approval message to say Rejected",
    )
    assert "*completed*" in block_text(run_message(bot, "C2").blocks)


async def test_a_group_member_may_answer(bot: Bot) -> None:
    await bot.apply(DEPLOY)
    bot.slack.groups["SREVIEW"] = ["U5"]
    results = collect_results(bot)
    asked = await start(bot, user="U1", channel="C4")
    await until_paused(bot)
    await click(bot, APPROVE, asked, user="U5")
    await bot.settle()
    assert results["ask"].output == {"approved": True, "by": "U5", "comment": None}
    assert ephemerals_to(bot, "U5") == []


async def test_no_answer_in_time_fails_the_node_and_says_so_in_the_thread(bot: Bot) -> None:
    definition = {
        **DEPLOY,
        "nodes": [
            {
                "id": "ask",
                "type": "core.approval",
                "params": {"message": "Quick?", "approvers": ["UBOSS"], "timeout": 2},
            },
            *DEPLOY["nodes"][1:],
        ],
    }
    await bot.apply(definition)
    results = collect_results(bot)
    asked = await start(bot, user="U1", channel="C3")
    assert "<@UBOSS>" in block_text(asked.blocks) and "<!subteam" not in block_text(asked.blocks)
    flow_run_id = await until_paused(bot)
    await bot.settle()

    assert results["ask"].status == "failed"
    assert results["ask"].error == "no answer from UBOSS within 2 s"
    assert results["decide"].status == "skipped"
    final = block_text(run_message(bot, "C3").blocks)
    assert "*failed*" in final and "no answer from UBOSS within 2 s" in final
    await apoll_until(
        lambda: "Not answered" in block_text(approval_message(bot, "C3").blocks),  # type: ignore[union-attr]
        message="the approval message to say Not answered",
    )
    settled = approval_message(bot, "C3")
    assert settled is not None and "no answer from UBOSS within 2 s" in block_text(settled.blocks)
    state = await flow_run_state(flow_run_id)
    assert state.is_failed() and "no answer from UBOSS within 2 s" in (state.message or "")
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert record.status == "failed"

    await click(bot, APPROVE, asked, user="UBOSS")
    late = await apoll_until(lambda: ephemerals_to(bot, "UBOSS"), message="the late answer's reply")
    assert "no longer waiting" in late[0]


async def test_a_timed_out_approval_with_on_error_continue_lets_the_run_complete(prefect_server: str) -> None:
    """After a pause times out the flow run is Running again, so the rest of the run goes on."""
    waiting: list[NodeEvent] = []
    definition = {
        "name": "soft-gate",
        "nodes": [
            {
                "id": "ask",
                "type": "core.approval",
                "params": {"message": "Anyone?", "approvers": ["U1"], "timeout": 1},
                "on_error": "continue",
            },
            {"id": "after", "type": "core.set", "params": {"values": {"went_on": True}}, "needs": ["ask"]},
        ],
    }
    result = await switchboard.arun(definition, listeners=[waiting.append], record=False)
    assert result.status == "completed"
    assert result.nodes["ask"].status == "failed" and result.nodes["ask"].error == "no answer from U1 within 1 s"
    assert result.nodes["after"].output == {"went_on": True}
    (asked,) = [e for e in waiting if e.kind == "waiting"]
    assert asked.request is not None
    assert asked.request["message"] == "Anyone?" and asked.request["approvers"] == ["U1"]
    assert asked.flow_run_id == result.flow_run_id
    assert result.flow_run_id is not None
    assert (await flow_run_state(result.flow_run_id)).is_completed()


def test_approvers_must_be_slack_ids() -> None:
    bad = {
        **DEPLOY,
        "nodes": [{"id": "ask", "type": "core.approval", "params": {"message": "?", "approvers": ["bob"]}}],
    }
    with pytest.raises(switchboard.DefinitionError, match=r"'bob' is not a Slack id: use a user \(U…\)"):
        switchboard.validate(bad)


async def test_an_approval_outside_the_runner_says_it_cannot_pause() -> None:
    async with httpx.AsyncClient() as http:
        ctx = NodeContext(node_id="ask", run=RunInfo("r1", "wf", 1, "api"), http=http, logger=logging.getLogger("test"))
        with pytest.raises(NodeConfigError, match="cannot pause"):
            await approval(ctx, ApprovalParams(message="?"))


async def test_a_click_after_the_run_was_cancelled_resumes_nothing(bot: Bot) -> None:
    await bot.apply(DEPLOY)
    asked = await start(bot, user="U1", channel="C5")
    flow_run_id = await until_paused(bot)
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert await bot.runtime.cancel(record.id) is None  # None: cancelled

    await click(bot, APPROVE, asked, user="UBOSS")
    (reply,) = await apoll_until(lambda: ephemerals_to(bot, "UBOSS"), message="the reply")
    assert "no longer waiting" in reply
    await apoll_until(
        lambda: "the run ended" in block_text(approval_message(bot, "C5").blocks),  # type: ignore[union-attr]
        message="the approval message to say the run ended",
    )
    assert "*cancelled*" in block_text(run_message(bot, "C5").blocks)
    assert (await flow_run_state(flow_run_id)).is_final()  # Crashed: Prefect's word for a cancelled task
