"""Node types: the registry, the node contract and the built-in node families.

Importing this package registers every built-in family explicitly (no directory scanning).
"""

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
from nodes.context import NodeContext, RunInfo
from nodes.errors import AuthError, NodeConfigError, NodeError, ProviderError, TransientError
from nodes.registry import REGISTRY, NodeSpec, Registry, UnknownNodeTypeError, node

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
