"""Core nodes: set values, branch, switch, merge branches, wait, fail on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeConfigError, NodeError
from nodes.params import Params
from nodes.registry import node


class SetParams(Params):
    values: dict[str, Any] = Field(description="Mapping of names to values (templates allowed).")


@node("core.set", pure=True)
async def set_values(ctx: NodeContext, params: SetParams) -> dict[str, Any]:
    """Output a mapping of values, each rendered from templates.

    Use it to name intermediate results or to shape data for later nodes.
    """
    return params.values


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", "", "none", "null"}


class IfParams(Params):
    condition: Any = Field(description='A boolean, usually a template such as "{{ inputs.count > 3 }}".')


class IfOutput(BaseModel):
    result: bool = Field(description="The condition as a boolean.")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise NodeConfigError(
            f"condition rendered to the text {value!r}, which is not a boolean; "
            "write the whole condition inside one {{ }}"
        )
    return bool(value)


@node(
    "core.if",
    pure=True,
    ports=lambda params: ["true", "false"],
    port_of=lambda output: "true" if output["result"] else "false",
)
async def if_(ctx: NodeContext, params: IfParams) -> IfOutput:
    """Branch on a condition: downstream nodes follow port `true` or `false`.

    Connect with `needs: ["<id>:true"]` or `needs: ["<id>:false"]`; the branch not taken is
    skipped.
    """
    return IfOutput(result=_as_bool(params.condition))


class SwitchParams(Params):
    value: Any = Field(description="The value to route on.")
    cases: list[Any] = Field(description="Values to compare against; each becomes a port.")


class SwitchOutput(BaseModel):
    value: Any = Field(description="The value that was routed.")
    port: str = Field(description="The port taken: the matching case as text, or `default`.")


def _switch_ports(params: Mapping[str, Any]) -> list[str] | None:
    cases = params.get("cases")
    if not isinstance(cases, list):
        return None  # templated cases: the ports are known only at run time
    return [str(case) for case in cases] + ["default"]


def _matches(value: Any, case: Any) -> bool:
    if value == case and type(value) is not bool and type(case) is not bool:
        return True
    if isinstance(value, bool) or isinstance(case, bool):
        return value is case or str(value).lower() == str(case).lower()
    return str(value) == str(case)


@node("core.switch", pure=True, ports=_switch_ports, port_of=lambda output: output["port"])
async def switch(ctx: NodeContext, params: SwitchParams) -> SwitchOutput:
    """Route on a value: port `<case>` for the first matching case, else port `default`.

    Cases compare by value, or by their text (so `1` matches `"1"`).
    """
    for case in params.cases:
        if _matches(params.value, case):
            return SwitchOutput(value=params.value, port=str(case))
    return SwitchOutput(value=params.value, port="default")


class MergeParams(Params):
    mode: Literal["all", "any"] = Field(
        default="all",
        description=(
            "`all`: run only when every upstream ran (a skipped upstream skips the merge); "
            "`any`: run when at least one upstream ran (joins if/else branches)."
        ),
    )


@node("core.merge", pure=True, wants_upstream=True, join=lambda params: str(params.get("mode", "all")))
async def merge(ctx: NodeContext, params: MergeParams) -> dict[str, Any]:
    """Join branches: output a mapping of each upstream node id that ran to its output."""
    return dict(ctx.upstream)


class WaitParams(Params):
    seconds: float = Field(ge=0, le=86_400, description="How long to wait, in seconds.")


class WaitOutput(BaseModel):
    waited: float = Field(description="Seconds waited.")


@node("core.wait")
async def wait(ctx: NodeContext, params: WaitParams) -> WaitOutput:
    """Pause the branch for a number of seconds."""
    await asyncio.sleep(params.seconds)
    return WaitOutput(waited=params.seconds)


class FailParams(Params):
    message: str = Field(description="The error message the run fails with.")


@node("core.fail")
async def fail(ctx: NodeContext, params: FailParams) -> None:
    """Fail the node on purpose with a message (a permanent error: never retried)."""
    raise NodeError(params.message, node_id=ctx.node_id)
