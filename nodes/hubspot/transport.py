"""The one place HubSpot nodes talk to HubSpot: requests, error messages, search paging.

CRM v3 over plain REST (:class:`nodes.rest.RestProvider`): the credential's bearer token —
an OAuth access token (refreshed once on 401) or a private-app token, both sent as
``Authorization: Bearer`` — and its ``base_url`` or ``https://api.hubapi.com``. 429 and 5xx
are ``TransientError`` (HubSpot's rate limits answer 429), any other 4xx ``ProviderError``.

HubSpot's error body is ``{"status": "error", "message", "correlationId", "category",
"context"?, "errors"?}``. A property validation error packs a JSON list into its message
(``Property values were not valid: [{"message": "Property \\"x\\" does not exist", ...}]``):
the node error carries those inner messages, plus ``context`` (e.g. ``INVALID_OBJECT_IDS``)
and ``errors[].message`` details, never the correlation id alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from nodes import safe_json
from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.providers import OAuth, Provider, register_provider
from nodes.rest import RestProvider

DESCRIPTOR = register_provider(
    Provider(
        name="hubspot",
        title="HubSpot",
        base_url="https://api.hubapi.com",
        per_second=10.0,  # HubSpot private apps: 100 requests per 10 s
        oauth=OAuth(
            "https://app.hubspot.com/oauth/authorize",
            "https://api.hubapi.com/oauth/v1/token",
            ("crm.objects.contacts.read", "crm.objects.contacts.write"),
        ),
        nodes="hubspot.*",
    )
)
PROVIDER = DESCRIPTOR.name
DEFAULT_BASE_URL = DESCRIPTOR.base_url
#: Records per search request (HubSpot's documented page limit is 100; newer docs allow 200).
SEARCH_PAGE_SIZE = 100

#: HubSpot-defined association type ids (associations v4 "association type ID values").
DEAL_TO_CONTACT = 3
NOTE_TO_CONTACT = 202
NOTE_TO_DEAL = 214


def _inner_messages(message: str) -> str:
    """``Property values were not valid: [{...}]`` -> the inner messages, joined."""
    head, sep, rest = message.partition(": ")
    if not sep or not rest.lstrip().startswith("["):
        return message
    try:
        items = safe_json.loads(rest, unique_keys=False)
    except safe_json.UnsafeJSONError:
        return message
    inner = [str(i["message"]) for i in items if isinstance(i, Mapping) and isinstance(i.get("message"), str)]
    return f"{head}: {'; '.join(inner)}" if inner else message


def message_of(body: Any) -> str | None:
    """The human message of a HubSpot error body, with its details (``context``, ``errors``)."""
    if not isinstance(body, Mapping):
        return None
    message = body.get("message")
    if not isinstance(message, str) or not message:
        description = body.get("error_description")  # an OAuth token-endpoint error
        return str(description) if isinstance(description, str) else None
    message = _inner_messages(message)
    details: list[str] = []
    context = body.get("context")
    if isinstance(context, Mapping):
        for key, value in context.items():
            if isinstance(value, list) and value:
                details.append(f"{key}: {', '.join(str(v) for v in value)}")
    for error in body.get("errors") or []:
        if isinstance(error, Mapping) and isinstance(error.get("message"), str) and error["message"] != message:
            details.append(str(error["message"]))
    return f"{message} ({'; '.join(details)})" if details else message


HUBSPOT = RestProvider(DESCRIPTOR, message_of=message_of)


async def request(ctx: NodeContext, method: str, path: str, *, body: Any = None) -> dict[str, Any]:
    """One HubSpot request; returns the JSON object it answered (errors are node errors)."""
    response = await HUBSPOT.request(ctx, method, path, json=body)
    data = HUBSPOT.json_of(response)
    if not isinstance(data, dict):
        raise ProviderError(f"{method} {path} answered {response.status_code} without a JSON object", provider=PROVIDER)
    return data


async def search(
    ctx: NodeContext, object_type: str, body: Mapping[str, Any], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` records of a CRM search, following ``paging.next.after``; returns them
    and HubSpot's ``total`` of matching records."""
    records: list[dict[str, Any]] = []
    total = 0
    after: str | None = None
    while len(records) < limit:
        page = {**body, "limit": min(SEARCH_PAGE_SIZE, limit - len(records))}
        if after is not None:
            page["after"] = after
        data = await request(ctx, "POST", f"/crm/v3/objects/{object_type}/search", body=page)
        total = int(data.get("total") or 0)
        results = [r for r in data.get("results") or [] if isinstance(r, dict)]
        records.extend(results)
        following = ((data.get("paging") or {}).get("next") or {}).get("after")
        if not results or following is None:
            break
        after = str(following)
    return records[:limit], total


def timestamp(value: date | datetime) -> str:
    """A HubSpot datetime property value: ISO 8601 in UTC with milliseconds (a date is its
    midnight UTC; a naive datetime is taken as UTC)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def property_value(value: str | int | float | bool | None) -> str:
    """HubSpot property values are text: booleans are ``true``/``false``, null clears (``""``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
