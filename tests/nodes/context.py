"""Call a node the way the runner does, without Prefect: a small NodeContext for tests."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from nodes.context import NodeContext, RunInfo
from nodes.http_guard import AllowList, GuardedTransport
from nodes.registry import REGISTRY


def make_context(
    http: httpx.AsyncClient | None = None,
    *,
    upstream: dict[str, Any] | None = None,
    node_id: str = "n",
    credential: dict[str, Any] | None = None,
) -> NodeContext:
    async def resolve(name: str, kind: str | None) -> dict[str, Any]:
        assert credential is not None
        return {"name": name, "provider": kind, **credential}

    return NodeContext(
        node_id=node_id,
        run=RunInfo(id="r1", workflow="test", version=None, trigger="test"),
        http=http or httpx.AsyncClient(transport=GuardedTransport(AllowList())),
        logger=logging.getLogger("test.node"),
        upstream=upstream or {},
        credential_name="test-credential" if credential is not None else None,
        credential_resolver=resolve if credential is not None else None,
    )


async def call_node(node_type: str, params: dict[str, Any], ctx: NodeContext | None = None) -> Any:
    """Validate ``params`` with the node's Params model and run it; returns the JSON output."""
    spec = REGISTRY.get(node_type)
    return await spec.invoke(ctx or make_context(), spec.params_model.model_validate(params))


def guarded_client(allow: str = "") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(AllowList.parse(allow)))
