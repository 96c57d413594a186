"""Calling a provider with the node's credential, refreshing an OAuth token once on 401.

Every transport goes through :func:`with_token`: it hands the current token and ``base_url``
to the request, and when the provider answers 401 (the transport raised ``AuthError`` with
``status=401``) for an OAuth credential it asks the credential store to refresh that token —
the store refreshes once even when several nodes were refused at the same moment — and
repeats the request exactly once. A second refusal, a credential without a refresh token, or
a refresh the provider refuses (revoked access) ends in ``AuthError`` naming the credential
to reconnect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from nodes.context import NodeContext
from nodes.errors import AuthError

T = TypeVar("T")

#: A request given ``(token, base_url)``.
Request = Callable[[str, str | None], Awaitable[T]]


async def with_token(ctx: NodeContext, request: Request[T]) -> T:
    """Run ``request(token, base_url)``; on a 401 refresh an OAuth credential once and repeat."""
    credential = await ctx.credential()
    token, base_url = ctx.token_of(credential)
    try:
        return await request(token, base_url)
    except AuthError as exc:
        if exc.status != 401 or not credential.get("refresh_token"):
            raise
        ctx.logger.info("credential %r was refused; refreshing it once", ctx.credential_name)
    token, base_url = ctx.token_of(await ctx.credential(rejected=token))
    return await request(token, base_url)
