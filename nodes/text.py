r"""Text nodes: render a template, match a regular expression.

``text.regex`` uses the ``regex`` module, not ``re``: its matcher can be interrupted
(``timeout=``) and lets go of the GIL while it runs (``concurrent=True``), so a pattern that
backtracks exponentially (``^(a|a)+$`` on ``"a" * 49 + "b"``) fails its node after
``match_timeout`` instead of stalling every run in the process. Patterns compile in the
module's re-compatible mode (VERSION0): Python's syntax, flags and group semantics. It also
accepts what ``re`` refuses — inline global flags such as ``(?i)`` anywhere in the pattern,
``\p{...}`` property classes, branch reset ``(?|...)``, recursion ``(?R)``, fuzzy matching
``(?:...){e<=1}`` and ``(?V1)`` for set operations; these are bounded by the same timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import regex as re_engine
from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.params import Params
from nodes.registry import node

#: The longest text and pattern text.regex takes.
MAX_TEXT_CHARS = 1_000_000
MAX_PATTERN_CHARS = 10_000
#: With `all`, at most this many matches are returned (`truncated` says there were more).
MAX_MATCHES = 10_000
#: Matches times their groups: a pattern with many groups returns fewer matches.
MAX_CAPTURES = 200_000
#: Characters the returned matches and groups may hold in all (one text can be in many groups).
MAX_CAPTURED_CHARS = 1_000_000


class TemplateParams(Params):
    template: str = Field(description="Text with {{ }} expressions, rendered before the node runs.")


class TemplateOutput(BaseModel):
    text: str = Field(description="The rendered text.")


@node("text.template", pure=True)
async def template(ctx: NodeContext, params: TemplateParams) -> TemplateOutput:
    """Render a text template (Jinja2, sandboxed) from inputs and earlier nodes' outputs."""
    return TemplateOutput(text=params.template)


class RegexParams(Params):
    text: str = Field(max_length=MAX_TEXT_CHARS, description="The text to search (at most 1,000,000 characters).")
    pattern: str = Field(
        max_length=MAX_PATTERN_CHARS,
        description="A regular expression in Python's syntax (the `regex` module's extensions, such as "
        "`\\p{L}`, possessive quantifiers and atomic groups, work too).",
    )
    all: bool = Field(default=False, description="Return every match (at most 10,000) instead of the first.")
    match_timeout: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Seconds the search may take (within the node's own `timeout`); a pattern that "
        "backtracks longer fails the node.",
    )


class RegexMatch(BaseModel):
    match: str = Field(description="The whole matched text.")
    groups: list[str | None] = Field(description="Numbered groups, in order.")
    named: dict[str, str | None] = Field(description="Named groups.")
    start: int = Field(description="Offset of the match in the text.")


class RegexOutput(BaseModel):
    matches: list[RegexMatch] = Field(description="The matches (at most one unless `all`).")
    truncated: bool = Field(default=False, description="`all` found more matches than were returned.")


@node("text.regex", pure=True)
async def regex(ctx: NodeContext, params: RegexParams) -> RegexOutput:
    """Find a regular expression in text: the first match, or all of them.

    The search runs beside other nodes and runs without holding them up, and stops after
    `match_timeout` seconds: a pattern that backtracks too much fails the node.
    """
    try:
        return await asyncio.to_thread(_search, params)
    except TimeoutError as exc:
        raise NodeConfigError(
            f"pattern {_excerpt(params.pattern)} took longer than {params.match_timeout:g}s on "
            f"{len(params.text)} characters of text (it backtracks too much: make it more specific)",
            node_id=ctx.node_id,
        ) from exc
    except _TooLarge as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc


class _TooLarge(Exception):
    """The matches would hold more captured text than the node returns."""


def _excerpt(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 80 else pattern[:80] + "...")


def _compile(pattern: str) -> Any:
    try:
        return re_engine.compile(pattern)
    except re_engine.error as exc:
        raise NodeConfigError(f"pattern {_excerpt(pattern)} is not a valid regex: {exc}") from exc
    except RecursionError as exc:  # the regex module parses patterns recursively
        raise NodeConfigError(f"pattern {_excerpt(pattern)} is not a valid regex: it nests too deeply") from exc


def _search(params: RegexParams) -> RegexOutput:
    """The search itself (in a worker thread). ``concurrent=True`` makes the regex module
    release the GIL while it matches; ``timeout`` interrupts it (TimeoutError)."""
    compiled = _compile(params.pattern)
    bounds = {"timeout": params.match_timeout, "concurrent": True}
    if not params.all:
        found = compiled.search(params.text, **bounds)
        if found is None:
            return RegexOutput(matches=[])
        _captured(found, 0)
        return RegexOutput(matches=[_match(found)])
    # Many groups make each match large: fewer matches then.
    limit = min(MAX_MATCHES, max(1, MAX_CAPTURES // (1 + compiled.groups)))
    matches: list[RegexMatch] = []
    captured = 0
    for found in compiled.finditer(params.text, **bounds):
        if len(matches) == limit:
            return RegexOutput(matches=matches, truncated=True)
        captured = _captured(found, captured)
        matches.append(_match(found))
    return RegexOutput(matches=matches)


def _captured(found: Any, before: int) -> int:
    """Characters captured so far, this match included, counted from the spans (no copies)."""
    spans = (found.span(group) for group in range(found.re.groups + 1))
    total = before + sum(end - start for start, end in spans if start >= 0)
    if total > MAX_CAPTURED_CHARS:
        raise _TooLarge(
            f"the matches and their groups would hold more than {MAX_CAPTURED_CHARS} characters; "
            "capture less (fewer or non-capturing groups) or match less of the text"
        )
    return total


def _match(found: Any) -> RegexMatch:
    return RegexMatch(match=found.group(0), groups=list(found.groups()), named=found.groupdict(), start=found.start())
