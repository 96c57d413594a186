"""``core.workflow``: run a stored workflow as a child of this run and return its outputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeError
from nodes.params import Params
from nodes.registry import node

#: A stored workflow's name (as ``flows.model.NAME_PATTERN``).
WORKFLOW_NAME = r"^[a-z0-9][a-z0-9-]*$"


class WorkflowParams(Params):
    workflow: str = Field(pattern=WORKFLOW_NAME, max_length=100, description="The stored workflow to run (its name).")
    version: int | Literal["latest"] = Field(
        default="latest",
        description="A stored version number, or `latest`: the latest when the call is made (recorded in the child).",
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The child's inputs (templates allowed), checked against its declared inputs."
    )


class WorkflowOutput(BaseModel):
    run_id: str = Field(description="The child run's id (`switchboard runs show ID`).")
    status: str = Field(description="How the child run ended: completed, failed or cancelled.")
    outputs: dict[str, Any] = Field(description="The child workflow's declared outputs.")
    workflow: str = Field(description="The workflow the child ran.")
    version: int = Field(description="The stored version the child ran.")
    flow_run_id: str | None = Field(default=None, description="The child's Prefect flow run (nested under this node).")


class ChildRunFailed(NodeError):
    """The child run did not complete; ``output`` is its ``{run_id, status, outputs, ...}``, which
    ``on_error: continue`` passes on as the node's output."""

    def __init__(self, message: str, *, output: dict[str, Any] | None = None, node_id: str | None = None) -> None:
        super().__init__(message, node_id=node_id)
        self.output = output


#: The node type.
WORKFLOW_NODE = "core.workflow"


@node(WORKFLOW_NODE)
async def run_workflow(ctx: NodeContext, params: WorkflowParams) -> WorkflowOutput:
    """Run a stored workflow as a sub-workflow and output its run id, status and outputs.

    The output also names the workflow, the version and the Prefect flow run the child ran.

    The child runs as a Prefect subflow nested under this node's task run, is recorded with
    this run as its parent, and its inputs are checked before it starts. A failed child fails
    the node (with `on_error: continue` its result is the output instead); `retries` resume
    the child, so its completed side effects are not repeated.
    """
    version = None if params.version == "latest" else params.version
    child = await ctx.run_workflow(params.workflow, version=version, inputs=params.inputs)
    return WorkflowOutput.model_validate(child)
