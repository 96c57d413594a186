"""Block Kit for the bot: the live run message, help, lists and errors. Pure functions.

Everything shown about a run goes through :func:`flows.artifact.redact` and is trimmed, so
secret-looking values never reach a channel.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from flows.artifact import preview, redact, value_preview
from flows.results import NodeResult, RunResult
from flows.usage import describe as describe_usage

#: Slack refuses a section text over 3000 characters and a message over 50 blocks.
SECTION_LIMIT = 2900
NODE_LINES = 40

STATUS_EMOJI = {
    "queued": ":white_circle:",
    "running": ":arrows_counterclockwise:",
    "retrying": ":repeat:",
    "waiting": ":hourglass_flowing_sand:",
    "completed": ":white_check_mark:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "cancelled": ":no_entry_sign:",
    "crashed": ":boom:",
}


@dataclass
class NodeLine:
    status: str = "queued"
    attempts: int = 0
    duration_ms: float = 0.0
    #: Slack mrkdwn, escaped (:meth:`RunView.node_detail`).
    detail: str = ""
    #: An ``ai.agent``'s tool calls so far, and the one running or last ended (while it runs).
    tool_calls: int = 0
    tool_failures: int = 0
    last_tool: str = ""

    def tool_event(self, name: str, status: str) -> None:
        """Fold an agent's ``tool`` event into the line: ``🔧 3 tool calls · search running``."""
        if status == "running":
            self.tool_calls += 1
        elif status == "failed":
            self.tool_failures += 1
        failed = f", {self.tool_failures} failed" if self.tool_failures else ""
        calls = "call" if self.tool_calls == 1 else "calls"
        self.detail = f":wrench: {self.tool_calls} tool {calls}{failed} · `{escape(name[:64])}` {status}"


@dataclass
class RunView:
    """What the run message shows; updated from node events, rendered by :func:`run_message`."""

    run_id: str
    workflow: str
    version: int | None
    user: str | None
    inputs: dict[str, Any]
    status: str = "running"
    nodes: dict[str, NodeLine] = field(default_factory=dict)
    flow_run_url: str | None = None
    error: str | None = None
    #: The workflow's declared outputs, once the run completed.
    outputs: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    duration_s: float | None = None
    #: The run's ``core.workflow`` nodes: their lines show the child runs they started.
    calls: frozenset[str] = frozenset()
    #: The Prefect UI's address (from ``PREFECT_UI_URL``), for links to child runs.
    prefect_ui: str | None = None
    #: Tokens and cost of the run's model calls, once it ended (the run result's ``usage``).
    usage: dict[str, Any] = field(default_factory=dict)

    def finish(self, result: RunResult) -> None:
        self.status = result.status
        self.error = result.error
        self.outputs = result.outputs
        self.usage = result.usage
        self.duration_s = time.monotonic() - self.started
        for node_id, node in result.nodes.items():
            self.nodes[node_id] = NodeLine(
                node.status, node.attempts, node.duration_ms, self.node_detail(node_id, node, final=True)
            )

    def node_detail(self, node_id: str, node: NodeResult, *, final: bool) -> str:
        """What a node's line says after it ended: the child runs of a ``core.workflow`` node,
        a failed node's error, and (``final``: in the summary) a preview of its output."""
        children = child_runs_line(node.output, self.prefect_ui) if node_id in self.calls else None
        error = node.error if node.status == "failed" else None
        if children is not None:
            return f"{children} — {escape(error)}" if error else children
        if error:
            return escape(error)
        return escape(preview(node.output, 120)) if final else ""


def flow_run_link(prefect_ui: str | None, flow_run_id: str | None) -> str | None:
    """The page of a Prefect flow run in the UI at ``prefect_ui``, if both are known: in
    Prefect 3.9's current UI (``/v2/``), which draws the run graph of the run's artifact (the
    classic UI at ``/`` shows its Mermaid source)."""
    if not prefect_ui or not flow_run_id:
        return None
    return f"{prefect_ui.rstrip('/')}/v2/runs/flow-run/{flow_run_id}"


def _uuid(value: Any) -> str | None:
    """``value`` if it is a UUID (what goes into a link), else None."""
    try:
        return str(UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


#: The most child runs a node's line links to (the others are counted).
CHILD_LINKS = 5


def child_runs_line(output: Any, prefect_ui: str | None) -> str | None:
    """The child runs of a ``core.workflow`` node, from its output (one child, or a list of
    them under ``for_each``), as Slack mrkdwn: each run linked to its Prefect flow run, with
    its status; None when the output names no child run."""
    children = [
        child
        for child in (output if isinstance(output, list) else [output])
        if isinstance(child, dict) and isinstance(child.get("run_id"), str)
    ]
    if not children:
        return None

    def run(child: dict[str, Any]) -> str:
        name = f"`{escape(str(child.get('workflow', 'workflow')))}` v{escape(str(child.get('version', '?')))}"
        url = flow_run_link(prefect_ui, _uuid(child.get("flow_run_id")))
        label = f"run {escape(child['run_id'])}"
        status = str(child.get("status", "unknown"))
        return f"{name} {f'<{url}|{label}>' if url else label} {STATUS_EMOJI.get(status, '')} {escape(status)}"

    if len(children) == 1:
        return f"↳ {run(children[0])}"
    counts = Counter(str(child.get("status", "unknown")) for child in children)
    summary = ", ".join(f"{n} {escape(status)}" for status, n in sorted(counts.items()))
    shown = ", ".join(run(child) for child in children[:CHILD_LINKS])
    more = f" and {len(children) - CHILD_LINKS} more" if len(children) > CHILD_LINKS else ""
    return f"↳ {len(children)} child runs ({summary}): {shown}{more}"


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def escape(text: str) -> str:
    """Slack's three control characters, escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inputs_line(inputs: dict[str, Any]) -> str:
    if not inputs:
        return "no inputs"
    shown = redact(inputs)
    parts = [f"`{escape(k)}`={escape(preview(v, 60))}" for k, v in shown.items()]
    return ", ".join(parts)


#: The most outputs the run message lists (the rest are counted).
OUTPUT_LINES = 20


def outputs_line(outputs: dict[str, Any]) -> str:
    """A run's outputs, one per line, redacted and trimmed."""
    shown = redact(outputs)
    lines = [f"`{escape(k)}` = {escape(value_preview(v, 200))}" for k, v in list(shown.items())[:OUTPUT_LINES]]
    if len(shown) > OUTPUT_LINES:
        lines.append(f"… and {len(shown) - OUTPUT_LINES} more")
    return "\n".join(lines)


def run_message(view: RunView) -> tuple[str, list[dict[str, Any]]]:
    """The text fallback and blocks of a run's message, for any state of the run."""
    version = f"v{view.version}" if view.version is not None else "draft"
    emoji = STATUS_EMOJI.get(view.status, "")
    text = f"{view.workflow} {version}: {view.status}"
    who = f" · by <@{view.user}>" if view.user else ""
    blocks: list[dict[str, Any]] = [
        _section(f"{emoji} *{escape(view.workflow)}* {version} — *{view.status}*"),
        _context(f"run `{view.run_id}`{who} · {inputs_line(view.inputs)}"),
    ]
    lines = []
    for node_id, node in list(view.nodes.items())[:NODE_LINES]:
        attempts = f" ×{node.attempts}" if node.attempts > 1 else ""
        took = f" {node.duration_ms / 1000:.1f}s" if node.duration_ms else ""
        detail = f" — {node.detail}" if node.detail else ""
        lines.append(f"{STATUS_EMOJI.get(node.status, '')} `{escape(node_id)}`{attempts}{took}{detail}")
    if len(view.nodes) > NODE_LINES:
        lines.append(f"… and {len(view.nodes) - NODE_LINES} more nodes")
    if lines:
        blocks.append(_section("\n".join(lines)))
    if view.outputs:
        blocks.append(_section("*Outputs*\n" + outputs_line(view.outputs)))
    if view.error:
        blocks.append(_section(f"*Error:* {escape(view.error)}"))
    ended = [f"took {view.duration_s:.1f}s"] if view.duration_s is not None else []
    spent = describe_usage(view.usage)
    if spent:
        ended.append(f"models: {escape(spent)}")
    if ended:
        blocks.append(_context(" · ".join(ended)))
    buttons: list[dict[str, Any]] = []
    if view.flow_run_url:
        buttons.append(
            {
                "type": "button",
                "action_id": "open_prefect",
                "text": {"type": "plain_text", "text": "Open in Prefect"},
                "url": view.flow_run_url,
            }
        )
    if view.status == "running":
        buttons.append(_button("cancel_run", "Cancel", view.run_id, style="danger"))
    elif view.status in ("failed", "crashed"):  # a cancelled run is started again, not resumed
        buttons.append(_button("retry_run", "Retry", view.run_id, style="primary"))
    if buttons:
        blocks.append({"type": "actions", "block_id": "run_actions", "elements": buttons})
    return text, blocks


def _button(action_id: str, label: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says ``text`` (mrkdwn) and can only be closed: what replaces a form
    that cannot be submitted."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title[:24]},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [_section(text)],
    }


def ephemeral(text: str) -> dict[str, Any]:
    """A reply only the user who typed the command sees."""
    return {"response_type": "ephemeral", "text": text}


def code(value: Any) -> str:
    return "```" + json.dumps(redact(value), indent=2, default=str)[: SECTION_LIMIT - 10] + "```"
