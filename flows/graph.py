"""A workflow as a Mermaid flowchart: for ``switchboard show --graph`` / ``validate --graph``
and, with each node's state, in every run's Prefect artifact.

Edges carry their branch port (``check -->|true| big``); references found only in templates
are dotted. ``for_each`` nodes are drawn as subroutines (``[[...]]``) and sub-workflow nodes
name the workflow they call. Node ids become ``n_<id>`` (Mermaid reserves words such as
``end``) and every label is escaped, so a hostile name cannot break out of its box.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flows.plan import Plan, PlannedNode

#: Mermaid classes of node states, as the artifact colours them.
STATE_CLASSES = {
    "completed": "fill:#dcfce7,stroke:#15803d",
    "failed": "fill:#fee2e2,stroke:#b91c1c",
    "skipped": "fill:#f3f4f6,stroke:#9ca3af,color:#6b7280",
    "cached": "fill:#e0f2fe,stroke:#0369a1",
    "waiting": "fill:#fef9c3,stroke:#a16207",
}
_LABEL_LIMIT = 60
_UNSAFE = re.compile(r'["<>&#`|\[\]{}()]')


def _label(text: str) -> str:
    text = text if len(text) <= _LABEL_LIMIT else text[: _LABEL_LIMIT - 1] + "…"
    return _UNSAFE.sub(lambda m: f"#{ord(m.group())};", text.replace("\n", " "))


def _box(planned: PlannedNode) -> str:
    parts = [planned.id, planned.spec.type]
    called = planned.definition.params.get("workflow") if planned.spec.type == "core.workflow" else None
    if isinstance(called, str):
        parts.append(f"↳ {called}")
    if planned.for_each is not None:
        parts.append("for each")
    label = "<br/>".join(_label(part) for part in parts)
    node = f"n_{planned.id}"
    return f'{node}[["{label}"]]' if planned.for_each is not None else f'{node}["{label}"]'


def mermaid(plan: Plan, states: Mapping[str, str] | None = None) -> str:
    """The plan as a Mermaid ``flowchart``; ``states`` (node id -> completed, failed, skipped,
    cached or waiting) colours the nodes."""
    lines = ["flowchart TD"]
    lines += [f"  {_box(planned)}" for planned in plan.nodes.values()]
    for planned in plan.nodes.values():
        for edge in planned.edges:
            arrow = f"-->|{_label(edge.port)}|" if edge.port else ("-->" if edge.explicit else "-.->")
            lines.append(f"  n_{edge.source} {arrow} n_{planned.id}")
    if states:
        used = sorted(set(states.values()) & STATE_CLASSES.keys())
        lines += [f"  classDef {state} {STATE_CLASSES[state]}" for state in used]
        for state in used:
            members = ",".join(f"n_{node_id}" for node_id, s in states.items() if s == state and node_id in plan.nodes)
            lines.append(f"  class {members} {state}")
    return "\n".join(lines) + "\n"
