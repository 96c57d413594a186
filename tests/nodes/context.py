"""Call a node the way the runner does, without Prefect: a small NodeContext for tests."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from nodes.context import CredentialResolver, FilesBackend, NodeContext, RunInfo
from nodes.errors import AuthError
from nodes.http_guard import AllowList, GuardedTransport
from nodes.registry import REGISTRY


def make_context(
    http: httpx.AsyncClient | None = None,
    *,
    upstream: dict[str, Any] | None = None,
    node_id: str = "n",
    credential: dict[str, Any] | None = None,
    resolver: CredentialResolver | None = None,
    files: FilesBackend | None = None,
) -> NodeContext:
    """``credential``: a fixed secret (a refused token cannot be refreshed); ``resolver``: a
    real one, e.g. :func:`store_resolver` over a CredentialStore; ``files``: the file store."""

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        assert credential is not None
        if rejected is not None:
            raise AuthError("the token was refused", provider=kind or "test", credential=name, status=401)
        return {"name": name, "provider": kind, **credential}

    if resolver is None and credential is not None:
        resolver = resolve
    return NodeContext(
        node_id=node_id,
        run=RunInfo(id="r1", workflow="test", version=None, trigger="test"),
        http=http or httpx.AsyncClient(transport=GuardedTransport(AllowList())),
        logger=logging.getLogger("test.node"),
        upstream=upstream or {},
        credential_name="test-credential" if resolver is not None else None,
        credential_resolver=resolver,
        files_backend=files,
    )


async def call_node(node_type: str, params: dict[str, Any], ctx: NodeContext | None = None) -> Any:
    """Validate ``params`` with the node's Params model and run it; returns the JSON output."""
    spec = REGISTRY.get(node_type)
    ctx = ctx or make_context()
    ctx.credential_kind = spec.credential
    return await spec.invoke(ctx, spec.params_model.model_validate(params))


def guarded_client(allow: str = "") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(AllowList.parse(allow)))


async def store_resolver(
    engine: Any, *, provider: str, secret: str, base_url: str, name: str = "test-credential"
) -> CredentialResolver:
    """A resolver over a real CredentialStore holding one credential (refreshes really happen)."""
    from cryptography.fernet import Fernet

    from storage.credentials import CredentialStore
    from storage.crypto import Keyring

    store = CredentialStore(engine, Keyring((Fernet.generate_key(),)))
    await store.add(name, provider=provider, secret=secret, base_url=base_url, actor="test")

    async def resolve(credential: str, kind: str | None, *, rejected: str | None = None) -> Any:
        from storage.credentials import CredentialError

        try:
            return await store.resolve(credential, kind, rejected=rejected)
        except CredentialError as exc:
            raise AuthError(str(exc), provider=kind or "credentials", credential=credential) from None

    return resolve
