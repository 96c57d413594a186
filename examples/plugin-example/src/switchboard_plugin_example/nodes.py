"""The plugin's node types, registered when Switchboard imports this module."""

from __future__ import annotations

from pydantic import BaseModel, Field

from switchboard import NodeConfigError, NodeContext, Params, node

#: The longest text the node reverses.
MAX_TEXT = 100_000


class ReverseParams(Params):
    text: str = Field(description="The text to reverse.")
    upper: bool = Field(default=False, description="Also make it upper case.")


class ReverseOutput(BaseModel):
    text: str = Field(description="The text, reversed.")
    length: int = Field(description="How many characters it has.")


@node("example.reverse", pure=True)
async def reverse(ctx: NodeContext, params: ReverseParams) -> ReverseOutput:
    """Reverse a text (an example plugin node).

    Pure: no I/O, so the runner neither caches nor persists it.
    """
    if len(params.text) > MAX_TEXT:
        raise NodeConfigError(f"text: {len(params.text):,} characters, at most {MAX_TEXT:,}")
    text = params.text[::-1]
    return ReverseOutput(text=text.upper() if params.upper else text, length=len(text))
