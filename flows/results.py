"""The run result: one shape for the CLI's ``--json``, the Python API and Slack summaries.

``{"run_id", "flow_run_id", "workflow", "version", "status", "inputs",
"nodes": {id: {"status", "attempts", "duration_ms", "cached", "output", "error"}}, "error",
"resumed_from", "outputs", "usage"}``

``outputs`` holds the workflow's declared ``outputs:`` rendered over the finished run (``{}``
when it declares none, or when the run did not complete).

``usage`` is what the run's model calls spent (:mod:`flows.usage`; ``{}`` when it made none):
``{"prompt_tokens", "completion_tokens", "total_tokens", "calls", "cost_usd", "by_model":
{model: {...}}}``, with ``unpriced`` listing models without a price and ``budget`` the
workflow's budget when it has one; sub-workflows' calls are included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["completed", "failed", "cancelled"]
NodeStatus = Literal["completed", "failed", "skipped"]


@dataclass
class NodeResult:
    """How one node ended."""

    status: NodeStatus
    attempts: int = 0
    duration_ms: float = 0.0
    cached: bool = False
    output: Any = None
    error: str | None = None
    #: The branch port taken (branch nodes only); not part of the public shape.
    port: str | None = None
    #: Why a node was skipped: "branch" (path not taken) or "failure" (an upstream failed).
    skip_reason: str | None = None
    #: The node failed but has ``on_error: continue``: downstream runs, the run does not fail.
    continued: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "attempts": self.attempts,
            "duration_ms": round(self.duration_ms, 3),
            "cached": self.cached,
            "output": self.output,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeResult:
        """The inverse of :meth:`to_dict`."""
        return cls(
            status=data["status"],
            attempts=int(data.get("attempts") or 0),
            duration_ms=float(data.get("duration_ms") or 0.0),
            cached=bool(data.get("cached")),
            output=data.get("output"),
            error=data.get("error"),
        )


@dataclass
class RunResult:
    """How a workflow run ended, node by node."""

    run_id: str
    workflow: str
    version: int | None
    status: RunStatus
    inputs: dict[str, Any]
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    flow_run_id: str | None = None
    error: str | None = None
    resumed_from: str | None = None
    #: The workflow's declared ``outputs``, rendered when the run completed (else empty).
    outputs: dict[str, Any] = field(default_factory=dict)
    #: Tokens and cost of the run's model calls (see the module docstring).
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready run result shape (see the module docstring)."""
        return {
            "run_id": self.run_id,
            "flow_run_id": self.flow_run_id,
            "workflow": self.workflow,
            "version": self.version,
            "status": self.status,
            "inputs": self.inputs,
            "nodes": {node_id: result.to_dict() for node_id, result in self.nodes.items()},
            "error": self.error,
            "resumed_from": self.resumed_from,
            "outputs": self.outputs,
            "usage": self.usage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """The inverse of :meth:`to_dict` (a result read back from a run record)."""
        return cls(
            run_id=data["run_id"],
            workflow=data["workflow"],
            version=data.get("version"),
            status=data["status"],
            inputs=data.get("inputs") or {},
            nodes={node_id: NodeResult.from_dict(node) for node_id, node in (data.get("nodes") or {}).items()},
            flow_run_id=data.get("flow_run_id"),
            error=data.get("error"),
            resumed_from=data.get("resumed_from"),
            outputs=data.get("outputs") or {},
            usage=data.get("usage") or {},
        )
