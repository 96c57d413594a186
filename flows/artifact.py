"""The markdown run summary left as a Prefect artifact, and output previews.

Previews are trimmed and redacted: values under keys that look like secrets are replaced.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flows.results import RunResult
from flows.usage import describe as describe_usage
from flows.usage import format_usd

PREVIEW_CHARS = 80
# "token" but not "tokens": usage counts such as total_tokens and max_tokens are not secrets.
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token(?!s)|api[_-]?key|authorization|cookie|credential)", re.I)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys' values replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A one-line, redacted, trimmed rendering of a node output."""
    if value is None:
        return ""
    text = json.dumps(redact(value), ensure_ascii=False, default=str, separators=(", ", ": "))
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """Like :func:`preview`, but a value that is None shows as ``null`` (an output's value,
    where None is a value, not an absence)."""
    return "null" if value is None else preview(value, limit)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def node_states(result: RunResult) -> dict[str, str]:
    """Each node's state for the run graph: completed, cached, failed or skipped."""
    return {node_id: "cached" if node.cached else node.status for node_id, node in result.nodes.items()}


def run_markdown(result: RunResult, graph: str | None = None) -> str:
    """The node table of a run as markdown, with the run graph (a Mermaid flowchart) first
    when ``graph`` is given."""
    version = f"v{result.version}" if result.version is not None else "draft"
    lines = [
        f"# {result.workflow} {version}: {result.status}",
        "",
        f"Run `{result.run_id}`" + (f", resumed from `{result.resumed_from}`" if result.resumed_from else ""),
        "",
        *([f"```mermaid\n{graph.rstrip()}\n```", ""] if graph else []),
        "| node | status | attempts | duration | output |",
        "|---|---|---|---|---|",
    ]
    for node_id, node in result.nodes.items():
        status = node.status + (" (cached)" if node.cached else "")
        shown = node.error if node.error and node.status != "completed" else preview(node.output)
        lines.append(
            f"| {_cell(node_id)} | {status} | {node.attempts} | {node.duration_ms:.0f} ms | {_cell(shown or '')} |"
        )
    if result.outputs:
        lines += ["", "| output | value |", "|---|---|"]
        for name, value in redact(result.outputs).items():
            lines.append(f"| {_cell(name)} | {_cell(value_preview(value, 200))} |")
    spent = describe_usage(result.usage)
    if spent:
        lines += ["", f"**Model usage:** {spent}"]
        by_model = result.usage.get("by_model") or {}
        if len(by_model) > 1:
            lines += ["", "| model | calls | prompt | completion | cost |", "|---|---|---|---|---|"]
            for model, used in by_model.items():
                lines.append(
                    f"| {_cell(model)} | {used.get('calls', 0)} | {used.get('prompt_tokens', 0):,} | "
                    f"{used.get('completion_tokens', 0):,} | {format_usd(used.get('cost_usd'))} |"
                )
    if result.error:
        lines += ["", f"**Error:** {_cell(result.error)}"]
    return "\n".join(lines) + "\n"
