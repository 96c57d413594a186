"""core.approval: pause the run until a person approves or rejects it (in Slack)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from nodes.context import InputTimeoutError, NodeContext
from nodes.errors import NodeError
from nodes.params import Params
from nodes.registry import node

#: A week: a paused run keeps its process (and worker slot) for the whole wait.
MAX_TIMEOUT = 7 * 24 * 3600

_SLACK_ID = re.compile(r"^[UWSCG][A-Z0-9]+$")


def slack_ids(approvers: list[str]) -> list[str]:
    """``approvers`` if each is a Slack user, user group or channel id; else a ValueError saying which is not."""
    for entry in approvers:
        if not _SLACK_ID.match(entry):
            raise ValueError(
                f"{entry!r} is not a Slack id: use a user (U…), user group (S…) or channel (C…) id, "
                "e.g. U024BE7LH (a user's profile → ⋮ → Copy member ID)"
            )
    return approvers


class ApprovalParams(Params):
    message: str = Field(
        description="What is to be approved; shown above the buttons (Slack mrkdwn, templates allowed)."
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="Slack ids that may answer: users (U…/W…), user groups (S…), channel members (C…/G…). "
        "Empty: the workflow's `permissions.approve` (and without that, Switchboard admins only).",
    )
    timeout: int = Field(
        default=3600, ge=1, le=MAX_TIMEOUT, description="Seconds to wait for an answer; then the node fails."
    )
    allow_self: bool = Field(default=False, description="Let the person who started the run answer it.")

    @field_validator("approvers")
    @classmethod
    def _slack_ids(cls, approvers: list[str]) -> list[str]:
        return slack_ids(approvers)


class ApprovalOutput(BaseModel):
    approved: bool = Field(description="True if approved, false if rejected.")
    by: str = Field(description="The Slack user id of who answered.")
    comment: str | None = Field(default=None, description="What they wrote in the comment field, if anything.")


@node("core.approval")
async def approval(ctx: NodeContext, params: ApprovalParams) -> ApprovalOutput:
    """Pause the run until a permitted approver clicks Approve or Reject in Slack.

    The bot posts the message with the buttons (and a comment field) in the run's thread, or
    in the workflow's `notify` channel. A rejection is an output (`approved: false`): branch on
    it with `core.if`. No answer within `timeout` seconds fails the node.
    """
    request = {
        "kind": "approval",
        "message": params.message,
        "approvers": params.approvers,
        "allow_self": params.allow_self,
    }
    try:
        return await ctx.wait_for_input(ApprovalOutput, request=request, timeout=params.timeout)
    except InputTimeoutError:
        who = ", ".join(params.approvers) or "the workflow's approvers"
        raise NodeError(f"no answer from {who} within {params.timeout} s", node_id=ctx.node_id) from None
