"""HTTP node: call any HTTP API (through the SSRF guard on ``ctx.http``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from nodes import safe_json
from nodes.context import NodeContext
from nodes.errors import NodeConfigError, ProviderError, TransientError
from nodes.http_guard import BlockedAddressError, ResponseTooLargeError
from nodes.params import Params
from nodes.provider_errors import error_for_status
from nodes.query import with_query
from nodes.registry import node

PROVIDER = "http"
_ERROR_PREVIEW = 500


class RequestParams(Params):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    url: str = Field(description="Absolute http(s) URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    query: dict[str, Any] = Field(
        default_factory=dict,
        description="Query-string parameters, merged into the query string of `url` (a key in both "
        "takes the value given here; a list repeats the key).",
    )
    json_body: Any = Field(default=None, alias="json", description="A JSON body (sets Content-Type: application/json).")
    body: str | None = Field(default=None, description="A raw text body (instead of `json`).")
    timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds before giving up.")
    ok_status: list[int] | None = Field(
        default=None,
        description="Statuses that count as success (default: any 2xx).",
    )


class RequestOutput(BaseModel):
    status: int = Field(description="The response status code.")
    headers: dict[str, str] = Field(description="Response headers (lower-case names).")
    json_body: Any = Field(default=None, alias="json", description="The parsed JSON body, if any.")
    text: str = Field(description="The body as text.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


def _is_ok(status: int, ok_status: list[int] | None) -> bool:
    return status in ok_status if ok_status else 200 <= status < 300


def _parse_json(response: httpx.Response, content: bytes) -> Any:
    """The body as JSON when it says it is JSON; None when it is not valid JSON.

    Parsed within bounds (:mod:`nodes.safe_json`): a hostile body nested 100k deep or with a
    10k-digit number fails the node with a ProviderError instead of a RecursionError.
    """
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return safe_json.loads(content, what="the JSON body", max_bytes=len(content), unique_keys=False)
    except safe_json.UnsafeJSONError as exc:
        if isinstance(exc.__context__, json.JSONDecodeError):  # plain malformed JSON: no JSON body
            return None
        raise ProviderError(f"{response.request.url.host} answered {exc}", provider=PROVIDER) from exc


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, read chunk by chunk and refused past ``limit`` bytes (the announced
    ``Content-Length`` is checked before anything is read)."""
    host = response.request.url.host
    announced = response.headers.get("content-length", "").strip()
    if response.request.method != "HEAD" and announced.isdigit() and int(announced) > limit:
        raise ResponseTooLargeError(host, limit, int(announced))
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes are counted: a small compressed body can decode to gigabytes.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(host, limit)
        chunks.append(chunk)
    return b"".join(chunks)


@node("http.request")
async def request(ctx: NodeContext, params: RequestParams) -> RequestOutput:
    """Send an HTTP request and return status, headers, JSON and text.

    429, 5xx, timeouts and connection errors are transient (retried when the node has
    `retries`, honouring Retry-After); other unexpected statuses fail at once. Private,
    loopback and link-local addresses are refused unless allowed by the operator
    (SWITCHBOARD_HTTP_ALLOW_HOSTS), and so is a response larger than the operator's limit
    (SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES, 10 MiB by default). `timeout` bounds the whole
    call, reading the response included.
    """
    if params.json_body is not None and params.body is not None:
        raise NodeConfigError("give either `json` or `body`, not both")
    url = httpx.URL(params.url)
    if url.scheme not in ("http", "https") or not url.host:
        raise NodeConfigError(f"url {params.url!r} must be an absolute http(s) URL")
    url = with_query(url, {k: v if isinstance(v, str | list) else str(v) for k, v in params.query.items()})
    try:
        # One deadline for the whole call: per-read timeouts alone let a server that drips a
        # byte at a time hold the node forever.
        async with asyncio.timeout(params.timeout):
            async with ctx.http.stream(
                params.method,
                url,
                headers=params.headers,
                json=params.json_body,
                content=params.body,
                timeout=params.timeout,
                follow_redirects=True,
            ) as response:
                content = await _read_body(response, ctx.max_response_bytes)
    except BlockedAddressError as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc
    except ResponseTooLargeError as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise TransientError(f"timed out after {params.timeout}s calling {url.host}", provider=PROVIDER) from exc
    except httpx.TransportError as exc:
        raise TransientError(f"connection to {url.host} failed: {exc}", provider=PROVIDER) from exc
    status = response.status_code
    text = content.decode(response.encoding or "utf-8", errors="replace")
    if not _is_ok(status, params.ok_status):
        preview = text[:_ERROR_PREVIEW]
        message = f"{params.method} {url.copy_with(query=None)}: {preview}".rstrip(": ")
        # The generic node sends no credential of ours: a 401 is the server's answer, not ours to refresh.
        raise error_for_status(PROVIDER, status, message=message, headers=dict(response.headers), credentialed=False)
    return RequestOutput(
        status=status,
        headers={k.lower(): v for k, v in response.headers.items()},
        json=_parse_json(response, content),
        text=text,
    )
