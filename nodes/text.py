"""Text nodes: render a template, match a regular expression."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.params import Params
from nodes.registry import node


class TemplateParams(Params):
    template: str = Field(description="Text with {{ }} expressions, rendered before the node runs.")


class TemplateOutput(BaseModel):
    text: str = Field(description="The rendered text.")


@node("text.template", pure=True)
async def template(ctx: NodeContext, params: TemplateParams) -> TemplateOutput:
    """Render a text template (Jinja2, sandboxed) from inputs and earlier nodes' outputs."""
    return TemplateOutput(text=params.template)


class RegexParams(Params):
    text: str = Field(description="The text to search.")
    pattern: str = Field(description="A Python regular expression.")
    all: bool = Field(default=False, description="Return every match instead of the first.")


class RegexMatch(BaseModel):
    match: str = Field(description="The whole matched text.")
    groups: list[str | None] = Field(description="Numbered groups, in order.")
    named: dict[str, str | None] = Field(description="Named groups.")
    start: int = Field(description="Offset of the match in the text.")


class RegexOutput(BaseModel):
    matches: list[RegexMatch] = Field(description="The matches (at most one unless `all`).")


@node("text.regex", pure=True)
async def regex(ctx: NodeContext, params: RegexParams) -> RegexOutput:
    """Find a regular expression in text: the first match, or all of them."""
    try:
        compiled = re.compile(params.pattern)
    except re.error as exc:
        raise NodeConfigError(f"pattern {params.pattern!r} is not a valid regex: {exc}") from exc
    found = compiled.finditer(params.text) if params.all else filter(None, [compiled.search(params.text)])
    return RegexOutput(
        matches=[
            RegexMatch(match=m.group(0), groups=list(m.groups()), named=m.groupdict(), start=m.start()) for m in found
        ]
    )
