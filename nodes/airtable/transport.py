"""The one place Airtable nodes talk to Airtable: client construction, paging and error mapping.

pyairtable is synchronous (requests), so calls run in a worker thread. Its retry strategy
(five retries of every 429) is off and its timeout, unset by default, is explicit: retries are
Prefect's, per node, and visible. Airtable's failures land on the node error tree:

* 401 -> ``AuthError`` (an OAuth credential is refreshed once by :func:`nodes.auth.with_token`);
* 429, 5xx, timeouts, connection errors -> ``TransientError``; after a 429 Airtable asks for
  30 seconds of quiet, so that is the wait unless a ``Retry-After`` header says otherwise;
* 403, 404, 422 and any other 4xx -> ``ProviderError`` carrying Airtable's own message
  (its bodies read ``{"error": {"type": ..., "message": ...}}`` or ``{"error": "NOT_FOUND"}``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pydantic
import requests
from pyairtable import Api, Table
from pyairtable.api.types import RecordDict

from nodes import safe_json
from nodes.auth import with_token
from nodes.context import NodeContext
from nodes.errors import AuthError, ProviderError, TransientError, parse_retry_after

PROVIDER = "airtable"
DEFAULT_BASE_URL = "https://api.airtable.com"
#: (connect, read) seconds.
TIMEOUT = (10, 60)
#: Airtable's documented penalty after a 429 when no ``Retry-After`` header says otherwise.
RATE_LIMIT_WAIT_SECONDS = 30.0
#: Airtable's largest list page.
PAGE_SIZE = 100
#: Airtable's largest write batch (create, update, upsert, delete).
BATCH_SIZE = Api.MAX_RECORDS_PER_REQUEST
#: Longest Airtable error text carried into a node error.
MESSAGE_LIMIT = 500

T = TypeVar("T")


def client(token: str, base_url: str | None) -> Api:
    """A pyairtable client without retries (``base_url`` points at a proxy or a fake)."""
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
    found = message_of(body)
    if found and isinstance(body, Mapping) and isinstance(body.get("error"), str):
        # a bare code such as NOT_FOUND says little without what was asked for
        request = response.request
        path = urlsplit(request.url or "").path if request is not None else ""
        if request is not None and path:
            found = f"{found} ({request.method} {path})"
    text = found or response.text.strip() or response.reason or f"HTTP {response.status_code}"
    return text[:MESSAGE_LIMIT]


def translate(exc: Exception, ctx: NodeContext) -> Exception:
    """Map a requests/pyairtable failure onto the node error tree."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        response = exc.response
        status = response.status_code
        message = _response_message(response)
        if status == 401:
            return AuthError(
                f"Airtable refused the credential: {message}",
                provider=PROVIDER,
                credential=ctx.credential_name,
                status=401,
            )
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None and status == 429:
                retry_after = RATE_LIMIT_WAIT_SECONDS
            return TransientError(message, provider=PROVIDER, status=status, retry_after=retry_after)
        return ProviderError(message, provider=PROVIDER, status=status)
    if isinstance(exc, requests.Timeout):
        return TransientError(f"timed out (connect {TIMEOUT[0]}s, read {TIMEOUT[1]}s)", provider=PROVIDER)
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"cannot reach Airtable: {type(exc).__name__}", provider=PROVIDER)
    if isinstance(exc, requests.RequestException | pydantic.ValidationError):
        return ProviderError(f"unexpected response from Airtable ({type(exc).__name__})", provider=PROVIDER)
    return exc


async def run(ctx: NodeContext, operation: Callable[[Api], T]) -> T:
    """Run a blocking pyairtable ``operation(api)`` in a thread with the node's credential,
    translating its errors (an OAuth token refused with 401 is refreshed once)."""

    async def attempt(token: str, base_url: str | None) -> T:
        api = client(token, base_url)
        try:
            return await asyncio.to_thread(operation, api)
        except (requests.RequestException, pydantic.ValidationError) as exc:
            raise translate(exc, ctx) from exc
        except RecursionError as exc:  # pyairtable parsed a hostile body nested thousands deep
            raise ProviderError("Airtable answered JSON nested too deeply to read", provider=PROVIDER) from exc
        finally:
            api.session.close()

    return await with_token(ctx, attempt)
