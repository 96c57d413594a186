"""The API's request and response bodies (they are the OpenAPI document's schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: The longest a ``POST .../runs`` may wait for its run before answering.
MAX_WAIT_SECONDS = 300.0
#: The statuses a run may have (a run handed to workers and not yet recorded is ``queued``).
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "crashed")


class ErrorBody(BaseModel):
    code: str = Field(description="A stable word to branch on: unauthorized, forbidden, not_found, invalid, ...")
    message: str = Field(description="What is wrong, for people.")
    problems: list[dict[str, str]] | None = Field(
        default=None, description="Every problem found, each with `field` and `message` (invalid inputs)."
    )
    request_id: str = Field(description="The X-Request-Id of the call (the bot's log names it).")


class ErrorResponse(BaseModel):
    error: ErrorBody


class InputInfo(BaseModel):
    type: str
    required: bool
    default: Any = None
    enum: list[Any] | None = None
    description: str | None = None


class WorkflowSummary(BaseModel):
    name: str
    description: str | None
    latest_version: int
    updated_at: str
    archived: bool


class WorkflowList(BaseModel):
    workflows: list[WorkflowSummary]


class VersionInfo(BaseModel):
    version: int
    created_at: str
    created_by: str | None
    note: str | None


class WorkflowDetail(BaseModel):
    name: str
    description: str | None
    version: int = Field(description="The latest version (what a run without `version` runs).")
    inputs: dict[str, InputInfo]
    outputs: list[str] = Field(description="The names of the workflow's declared outputs.")
    tags: list[str]
    versions: list[VersionInfo]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The run's inputs as JSON values, checked against the workflow's types."
    )
    version: int | None = Field(default=None, ge=1, description="Run this version (default: the latest).")
    wait: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the run to end; the answer then holds its whole result.",
    )


class Run(BaseModel):
    """A run: its record, and once it has ended its result (`nodes`, `outputs`, `usage`)."""

    run_id: str
    workflow: str
    version: int | None
    status: str = Field(description="queued, running, completed, failed, cancelled or crashed.")
    trigger: str | None = None
    triggered_by: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    flow_run_id: str | None = None
    resumed_from: str | None = None
    parent_run_id: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    outputs: dict[str, Any] | None = Field(default=None, description="The workflow's declared outputs (completed).")
    nodes: dict[str, Any] | None = Field(default=None, description="Each node's status, attempts, output, error.")
    total_tokens: int | None = Field(default=None, description="Tokens the run's model calls spent (None: none).")
    cost_usd: float | None = Field(default=None, description="Their estimated cost in USD (None: none, or no price).")
    usage: dict[str, Any] | None = Field(
        default=None,
        description="Tokens and cost of the run's model calls: prompt_tokens, completion_tokens, total_tokens, "
        "calls, cost_usd, by_model (per model), unpriced (models without a price), budget.",
    )


class RunList(BaseModel):
    runs: list[Run]
