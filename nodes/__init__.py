"""Node types: the registry, the node contract and the built-in node families.

Importing this package registers every built-in family explicitly (no directory scanning).
"""

from importlib import metadata

from nodes.context import NodeContext, RunInfo
from nodes.errors import AuthError, NodeConfigError, NodeError, ProviderError, TransientError
from nodes.registry import REGISTRY, NodeSpec, Registry, UnknownNodeTypeError, node


def _version() -> str | None:
    try:
        return metadata.version("switchboard")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return None


# The built-in families, attributed to Switchboard itself (`switchboard nodes` shows where
# every type comes from; plugins register through nodes.plugins).
with REGISTRY.registering_for("switchboard", _version()):
    from nodes import (  # noqa: F401 - registration by import
        ai,
        airtable,
        approval,
        core,
        document,
        files,
        gdrive,
        github,
        http,
        hubspot,
        json_query,
        memory,
        slack,
        state,
        subworkflow,
        text,
    )

__all__ = [
    "REGISTRY",
    "AuthError",
    "NodeConfigError",
    "NodeContext",
    "NodeError",
    "NodeSpec",
    "ProviderError",
    "Registry",
    "RunInfo",
    "TransientError",
    "UnknownNodeTypeError",
    "node",
]
