"""The library's copy of the on-demand flow's signature matches the flow the workers run."""

from __future__ import annotations

from prefect.utilities.callables import parameter_schema

from deployments.entrypoint import run_workflow_flow
from switchboard.work_pool import run_request_schema


def test_the_deployment_schema_is_the_entrypoint_flows_own() -> None:
    assert run_request_schema() == parameter_schema(run_workflow_flow).model_dump(exclude_unset=True)
