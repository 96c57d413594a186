"""Chat memory: append turns to a session and read them back, across runs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.params import Params
from nodes.registry import node


class AppendParams(Params):
    session: str = Field(min_length=1, max_length=200, description="The conversation key, e.g. a Slack thread id.")
    role: Literal["user", "assistant", "system", "tool"] = Field(description="Who said it.")
    content: str = Field(description="What was said.")


class AppendOutput(BaseModel):
    session: str = Field(description="The conversation key.")
    count: int = Field(description="Turns the session holds now.")


@node("memory.chat_append")
async def chat_append(ctx: NodeContext, params: AppendParams) -> AppendOutput:
    """Append a turn to a chat memory session (kept across runs)."""
    count = await ctx.memory.append(params.session, params.role, params.content)
    return AppendOutput(session=params.session, count=count)


class HistoryParams(Params):
    session: str = Field(min_length=1, max_length=200, description="The conversation key.")
    limit: int = Field(default=20, ge=1, le=1000, description="At most this many of the latest turns.")


class Turn(BaseModel):
    role: str = Field(description="Who said it.")
    content: str = Field(description="What was said.")
    at: str = Field(description="When (ISO 8601).")


class HistoryOutput(BaseModel):
    messages: list[Turn] = Field(description="The latest turns, oldest first.")


@node("memory.chat_history")
async def chat_history(ctx: NodeContext, params: HistoryParams) -> HistoryOutput:
    """Read the latest turns of a chat memory session, oldest first."""
    messages = await ctx.memory.history(params.session, params.limit)
    return HistoryOutput(messages=[Turn(**m.to_dict()) for m in messages])
