"""The transport for providers spoken to over plain REST with httpx (HubSpot, Google Drive, Slack).

A family builds one :class:`RestProvider` (its registered :class:`nodes.providers.Provider`
and how to read an error message out of its bodies) and calls :meth:`RestProvider.request`
from its nodes. The request carries the node's credential as a bearer token, goes to the
credential's ``base_url`` (or the provider's default), and every failure lands on the node
error tree through :func:`nodes.provider_errors.error_for_status`:

* timeouts, connection errors, 429 and 5xx -> ``TransientError`` (``Retry-After`` honoured);
* 401 -> one refresh of an OAuth credential and one repeat (:func:`nodes.auth.with_token`),
  then ``AuthError`` naming the credential to reconnect;
* any other 4xx -> ``ProviderError`` carrying the provider's own message (a 404 names the
  request), unless the provider's ``ErrorRules`` make it transient.

Requests go through the running event loop's pooled client for the base URL
(:mod:`nodes.provider_clients`): connections are kept alive between requests and nodes.
Provider calls do not go through the SSRF guard on ``ctx.http``: their base URL is set by
whoever stored the credential, not by workflow authors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from nodes import safe_json
from nodes.auth import with_token
from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.provider_clients import client_for
from nodes.provider_errors import MESSAGE_LIMIT, connection_error, error_for_status, timeout_error
from nodes.providers import Provider
from nodes.query import with_query

#: Largest provider JSON body parsed (a files.list page or a 100-record search is far below).
JSON_LIMIT = 32 * 1024 * 1024


def try_json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON within :mod:`nodes.safe_json`'s bounds
    (never a RecursionError on a hostile body nested 100k deep)."""
    try:
        return safe_json.loads(response.content, max_bytes=JSON_LIMIT, unique_keys=False)
    except safe_json.UnsafeJSONError:
        return None


def _default_message(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return None


@dataclass(frozen=True)
class RestProvider:
    """One REST provider: its descriptor (where it lives, its timeout) and how its errors read."""

    provider: Provider
    #: Pulls the human message out of a parsed JSON error body (None: use the raw text).
    message_of: Callable[[Any], str | None] = field(default=_default_message)

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def default_base_url(self) -> str:
        return self.provider.base_url

    @property
    def timeout(self) -> float:
        return self.provider.timeout

    async def request(
        self,
        ctx: NodeContext,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request for the node; returns the (2xx/3xx) response or raises a node error.

        ``path`` is joined to the credential's ``base_url`` (or the provider's default); ``params``
        are merged into the query string ``path`` may carry (:func:`nodes.query.with_query`).
        """

        async def attempt(token: str, base_url: str | None) -> httpx.Response:
            # A path may carry its own query (a provider's pagination link): merge, never replace.
            url = with_query(f"{(base_url or self.default_base_url).rstrip('/')}/{path.lstrip('/')}", params)
            sent_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            client = await client_for(base_url or self.default_base_url)
            try:
                response = await client.request(
                    method, url, json=json, content=content, headers=sent_headers, timeout=self.timeout
                )
            except httpx.TimeoutException as exc:
                raise timeout_error(self.name, self.timeout) from exc
            except httpx.TransportError as exc:
                raise connection_error(self.name, exc) from exc
            self.raise_for_status(ctx, response)
            return response

        return await with_token(ctx, attempt)

    def json_of(self, response: httpx.Response) -> Any:
        """The body of a provider response as JSON; a ProviderError saying why when it is not
        JSON within :mod:`nodes.safe_json`'s bounds."""
        try:
            return safe_json.loads(
                response.content, what=f"{self.name}'s response", max_bytes=JSON_LIMIT, unique_keys=False
            )
        except safe_json.UnsafeJSONError as exc:
            raise ProviderError(str(exc), provider=self.name, status=response.status_code) from exc

    def raise_for_status(self, ctx: NodeContext, response: httpx.Response) -> None:
        """Map an error response onto the node error tree (2xx and 3xx pass)."""
        status = response.status_code
        if status < 400:
            return
        body = try_json(response)
        text = self.message_of(body) or response.text or response.reason_phrase
        raise error_for_status(
            self.name,
            status,
            message=text[:MESSAGE_LIMIT],
            headers=dict(response.headers),
            body=body,
            credential=ctx.credential_name,
            request=f"{response.request.method} {response.request.url.path}",
        )
