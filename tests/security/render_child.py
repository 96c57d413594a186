"""Render hostile templates in this process, under a memory ceiling, and report each outcome.

Run by tests/security/test_templates.py as ``python -m tests.security.render_child``: stdin is
JSON ``{"templates": [...], "memory_bytes": N, "render_seconds": S}``; stdout gets one JSON
line per template, written as soon as it is known — ``{"outcome": "ok" | "ExpressionError" |
<exception type>, "message": ..., "seconds": ...}`` — so a template that kills the process
is the first one without a line. The ceiling (RLIMIT_AS) makes a template that would take
gigabytes fail here with MemoryError instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


def context() -> dict[str, Any]:
    """A render scope shaped like the runner's, with a few large values to build on."""
    return {
        "inputs": {
            "n": 3,
            "s": "abc",
            "xs": list(range(10_000)),
            "text": "lorem ipsum dolor\tsit amet " * 1_000,
            "d": {"k": [1, 2, {"deep": "value"}]},
        },
        "nodes": {"a": {"output": {"items": list(range(100)), "text": "hello"}, "status": "completed"}},
        "item": None,
        "index": None,
        "run": {"id": "run-1", "workflow": "wf", "version": 1, "trigger": "test"},
        "env": {},
    }


def main() -> None:
    request = json.load(sys.stdin)
    limit = int(request["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from flows import expressions

    limits = None
    if hasattr(expressions, "RenderLimits"):
        limits = expressions.RenderLimits(timeout_seconds=float(request["render_seconds"]))
    scope = context()
    for source in request["templates"]:
        started = time.monotonic()
        try:
            compiled = expressions.compile_value(source)
            value = compiled.render(scope) if limits is None else compiled.render(scope, limits=limits)
            outcome, message = "ok", repr(value)[:200]
        except expressions.ExpressionError as exc:
            outcome, message = "ExpressionError", str(exc)[:400]
        except BaseException as exc:  # the point: report whatever escaped, by type
            outcome, message = type(exc).__name__, str(exc)[:400]
        line = {"outcome": outcome, "message": message, "seconds": round(time.monotonic() - started, 3)}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
