"""Key-value state kept across runs: per workflow by default, or in a named scope.

A scheduled workflow can remember, say, the last issue number it processed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeError
from nodes.params import Params
from nodes.registry import node


class _Keyed(Params):
    key: str = Field(min_length=1, max_length=200, description="The state key.")
    scope: str | None = Field(
        default=None, max_length=100, description="Share state under this name (default: the workflow's own)."
    )


def _scope(ctx: NodeContext, params: _Keyed) -> str:
    return params.scope or f"workflow:{ctx.run.workflow}"


class GetParams(_Keyed):
    default: Any = Field(default=None, description="The value when the key is missing or expired.")


class GetOutput(BaseModel):
    value: Any = Field(description="The stored value, or `default`.")
    found: bool = Field(description="Whether a (live) value was stored.")


@node("state.get")
async def get(ctx: NodeContext, params: GetParams) -> GetOutput:
    """Read a value kept across runs (or `default` when it is missing or expired)."""
    found, value = await ctx.memory.get(_scope(ctx, params), params.key)
    return GetOutput(value=value if found else params.default, found=found)


class SetParams(_Keyed):
    value: Any = Field(description="Any JSON value.")
    ttl: float | None = Field(default=None, gt=0, description="Forget the value after this many seconds.")


class ValueOutput(BaseModel):
    value: Any = Field(description="The value now stored.")


@node("state.set")
async def set_(ctx: NodeContext, params: SetParams) -> ValueOutput:
    """Store a value across runs (optionally for `ttl` seconds)."""
    return ValueOutput(value=await ctx.memory.set(_scope(ctx, params), params.key, params.value, params.ttl))


class IncrParams(_Keyed):
    by: int | float = Field(default=1, description="How much to add (may be negative).")


@node("state.incr")
async def incr(ctx: NodeContext, params: IncrParams) -> ValueOutput:
    """Add to a number kept across runs (missing counts as 0); atomic under concurrent runs."""
    try:
        value = await ctx.memory.incr(_scope(ctx, params), params.key, params.by)
    except ValueError as exc:
        raise NodeError(str(exc), node_id=ctx.node_id) from exc
    return ValueOutput(value=value)
