"""Switchboard: workflows compiled into dynamic Prefect flows.

>>> import switchboard
>>> wf = switchboard.load("examples/branching.yaml")
>>> result = switchboard.run(wf, inputs={"count": 5})
>>> result.status, result.nodes["big"].output
"""

from switchboard.bootstrap import configure_prefect_environment

configure_prefect_environment()

from flows.model import DefinitionError, InputError, Problem, Workflow  # noqa: E402
from flows.results import NodeResult, RunResult  # noqa: E402
from nodes import NodeContext, node  # noqa: E402
from nodes.errors import AuthError, NodeConfigError, NodeError, ProviderError, TransientError  # noqa: E402
from switchboard.api import (  # noqa: E402
    NotRetryableError,
    RunNotFoundError,
    aretry,
    arun,
    load,
    retry,
    run,
    validate,
)

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "DefinitionError",
    "InputError",
    "NodeConfigError",
    "NodeContext",
    "NodeError",
    "NodeResult",
    "NotRetryableError",
    "Problem",
    "ProviderError",
    "RunNotFoundError",
    "RunResult",
    "TransientError",
    "Workflow",
    "aretry",
    "arun",
    "load",
    "node",
    "retry",
    "run",
    "validate",
]
