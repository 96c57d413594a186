"""Switchboard: workflows compiled into dynamic Prefect flows.

>>> import switchboard
>>> wf = switchboard.load("examples/branching.yaml")
>>> result = switchboard.run(wf, inputs={"count": 5})
>>> result.status, result.nodes["big"].output

Applications hold one :class:`Client` on their own :class:`Settings`::

    async with switchboard.Client(switchboard.Settings.from_env()) as client:
        await client.workflows.apply("examples/branching.yaml")
        result = await client.runs.run(wf, {"count": 5})
"""

from switchboard.bootstrap import configure_prefect_environment

configure_prefect_environment()

from flows.model import DefinitionError, InputError, Problem, Workflow  # noqa: E402
from flows.results import NodeResult, RunResult  # noqa: E402
from nodes import NodeContext, node  # noqa: E402
from nodes.errors import AuthError, NodeConfigError, NodeError, ProviderError, TransientError  # noqa: E402
from nodes.params import Params  # noqa: E402
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
from switchboard.client import Client, default_client  # noqa: E402
from switchboard.errors import ClientClosedError  # noqa: E402
from switchboard.settings import Settings  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Client",
    "ClientClosedError",
    "DefinitionError",
    "InputError",
    "NodeConfigError",
    "NodeContext",
    "NodeError",
    "NodeResult",
    "NotRetryableError",
    "Params",
    "Problem",
    "ProviderError",
    "RunNotFoundError",
    "RunResult",
    "Settings",
    "TransientError",
    "Workflow",
    "aretry",
    "arun",
    "default_client",
    "load",
    "node",
    "retry",
    "run",
    "validate",
]

# Node plugins (installed packages with `switchboard.nodes` entry points) load last, when
# everything they may import from `switchboard` exists: every process that imports
# switchboard (CLI, bot, workers, the deployment entrypoint) has the same node types.
from nodes.plugins import load_plugins  # noqa: E402

load_plugins()
