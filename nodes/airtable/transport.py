"""The one place Airtable nodes talk to Airtable: client construction, paging and error mapping.

pyairtable is synchronous (requests), so calls run in a worker thread
(:func:`nodes.blocking_sdk.run_blocking`). Its retry strategy (five retries of every 429) is
off and its timeout, unset by default, is explicit: retries are Prefect's, per node, and
visible. Airtable's failures land on the node error tree through :mod:`nodes.provider_errors`
(401 -> ``AuthError``, refreshed once for OAuth; 429, 5xx, timeouts -> ``TransientError``;
other 4xx -> ``ProviderError`` with Airtable's own message). Airtable's own rule: after a 429
it asks for 30 seconds of quiet, so that is the wait unless a ``Retry-After`` header says
otherwise. Its bodies read ``{"error": {"type": ..., "message": ...}}`` or ``{"error": "NOT_FOUND"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import pydantic
import requests

from nodes import safe_json
from nodes.auth import with_token
from nodes.blocking_sdk import run_blocking
from nodes.context import NodeContext
from nodes.errors import NodeError, ProviderError
from nodes.provider_errors import error_for_status
from nodes.providers import ErrorRules, OAuth, Provider, register_provider

if TYPE_CHECKING:  # pyairtable is imported on the first call (its models cost ~0.5 s of CPU)
    from pyairtable import Api, Table
    from pyairtable.api.types import RecordDict

#: Airtable's documented penalty after a 429 when no ``Retry-After`` header says otherwise.
RATE_LIMIT_WAIT_SECONDS = 30.0
DESCRIPTOR = register_provider(
    Provider(
        name="airtable",
        title="Airtable",
        base_url="https://api.airtable.com",
        per_second=5.0,  # Airtable's published limit: 5 requests a second per base
        timeout=60.0,
        oauth=OAuth(
            "https://airtable.com/oauth2/v1/authorize",
            "https://airtable.com/oauth2/v1/token",
            ("data.records:read", "data.records:write", "schema.bases:read"),
        ),
        errors=ErrorRules(rate_limit_wait=RATE_LIMIT_WAIT_SECONDS),
        nodes="airtable.*",
    )
)
PROVIDER = DESCRIPTOR.name
DEFAULT_BASE_URL = DESCRIPTOR.base_url
#: (connect, read) seconds.
TIMEOUT = (10, int(DESCRIPTOR.timeout))
#: The longest one operation (which may page through many requests) may take.
OPERATION_TIMEOUT_SECONDS = 300.0
#: Airtable's largest list page.
PAGE_SIZE = 100
#: Airtable's largest write batch (create, update, upsert, delete): pyairtable's
#: ``Api.MAX_RECORDS_PER_REQUEST``.
BATCH_SIZE = 10
#: Longest Airtable error text carried into a node error.
MESSAGE_LIMIT = 500

T = TypeVar("T")


def client(token: str, base_url: str | None) -> Api:
    """A pyairtable client without retries (``base_url`` points at a proxy or a fake)."""
    from pyairtable import Api

    return Api(
        token,
        endpoint_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        timeout=TIMEOUT,
        retry_strategy=None,
    )


def iterate_records(table: Table, *, limit: int, **options: Any) -> Iterator[RecordDict]:
    """Up to ``limit`` records, page by page (Airtable's ``offset``); no page is requested
    once ``limit`` records are in hand. ``options`` are pyairtable's list options."""
    if limit <= 0:
        return
    seen = 0
    for page in table.iterate(page_size=min(limit, PAGE_SIZE), max_records=limit, **options):
        for record in page:
            yield record
            seen += 1
            if seen >= limit:
                return


def message_of(body: Any) -> str | None:
    """Airtable's message from an error body, with its error type when it sent one."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping):
        kind, text = error.get("type"), error.get("message")
        if isinstance(text, str) and text:
            return f"{kind}: {text}" if isinstance(kind, str) and kind else text
        return str(kind) if kind else None
    if isinstance(error, str) and error:
        return error
    errors = body.get("errors")  # also read a list shape: {"errors": [{"error": ..., "message": ...}]}
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return message_of({"error": {"type": errors[0].get("error"), "message": errors[0].get("message")}})
    return None


def _response_message(response: requests.Response) -> str:
    try:
        body = safe_json.loads(response.content, unique_keys=False)
    except safe_json.UnsafeJSONError:
        body = None
    text = message_of(body) or response.text.strip() or response.reason or f"HTTP {response.status_code}"
    return text[:MESSAGE_LIMIT]


def _request_of(response: requests.Response) -> str | None:
    """What was asked for: ``GET /v0/app.../Tasks/rec...``."""
    request = response.request
    path = urlsplit(request.url or "").path if request is not None else ""
    return f"{request.method} {path}" if request is not None and path else None


def translate(exc: Exception, ctx: NodeContext) -> NodeError | None:
    """Map a pyairtable failure onto the node error tree (None: not one to translate)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        return error_for_status(
            PROVIDER,
            response.status_code,
            message=_response_message(response),
            headers=dict(response.headers),
            credential=ctx.credential_name,
            request=_request_of(response),
        )
    if isinstance(exc, requests.RequestException | pydantic.ValidationError):
        return ProviderError(f"unexpected response from Airtable ({type(exc).__name__})", provider=PROVIDER)
    return None


async def request(ctx: NodeContext, operation: Callable[[Api], T]) -> T:
    """Run a blocking pyairtable ``operation(api)`` in a thread with the node's credential,
    translating its errors (an OAuth token refused with 401 is refreshed once)."""

    async def attempt(token: str, base_url: str | None) -> T:
        return await run_blocking(
            PROVIDER,
            client(token, base_url),
            operation,
            timeout=OPERATION_TIMEOUT_SECONDS,
            request_timeout=TIMEOUT[1],
            translate=lambda exc: translate(exc, ctx),
            close=lambda api: api.session.close(),
        )

    return await with_token(ctx, attempt)
