"""The one place Google Drive nodes talk to Drive: requests, error mapping, paging, uploads.

Drive v3 over plain REST (:class:`nodes.rest.RestProvider`): the credential's bearer token
(OAuth in practice, refreshed once on 401), its ``base_url`` or ``https://www.googleapis.com``
— so metadata calls (``/drive/v3/...``) and uploads (``/upload/drive/v3/...``) share one base.

Google's error body is ``{"error": {"code", "message", "errors": [{"reason", ...}]}}``; the
node error carries ``error.message``. Besides 429 and 5xx, a 403 whose reason is
``rateLimitExceeded`` or ``userRateLimitExceeded`` is a rate limit (Google documents both as
"retry with exponential backoff") and so a ``TransientError``; every other 403 (no access,
``exportSizeLimitExceeded``, ``fileNotDownloadable``...) is permanent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.providers import ErrorRules, OAuth, Provider, register_provider
from nodes.rest import RestProvider

FILES_PATH = "/drive/v3/files"
UPLOAD_PATH = "/upload/drive/v3/files"
#: Drive's largest ``pageSize`` for files.list.
MAX_PAGE_SIZE = 1000
#: The file fields the nodes read.
FILE_FIELDS = "id,name,mimeType,size,modifiedTime,parents,webViewLink"
#: 403 reasons that mean "slow down", not "no".
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
GOOGLE_APPS_PREFIX = "application/vnd.google-apps."
FOLDER_MIME = "application/vnd.google-apps.folder"


def message_of(body: Any) -> str | None:
    """The human message of a Google error body (or of an OAuth-style one)."""
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    if isinstance(error, Mapping):
        if isinstance(error.get("message"), str) and error["message"]:
            return str(error["message"])
        for item in error.get("errors") or []:
            if isinstance(item, Mapping) and isinstance(item.get("message"), str):
                return str(item["message"])
        return None
    if isinstance(body.get("error_description"), str):
        return str(body["error_description"])
    if isinstance(error, str):
        return error
    return str(body["message"]) if isinstance(body.get("message"), str) else None


def reasons_of(body: Any) -> set[str]:
    """The ``errors[].reason`` values of a (parsed) Google error body."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return set()
    return {str(e["reason"]) for e in error.get("errors") or [] if isinstance(e, Mapping) and e.get("reason")}


def is_rate_limited(status: int, headers: Mapping[str, str], body: Any) -> bool:
    """A 403 rate limit (Google's usageLimits reasons) is worth retrying."""
    return status == 403 and bool(reasons_of(body) & RATE_LIMIT_REASONS)


DESCRIPTOR = register_provider(
    Provider(
        name="gdrive",
        title="Google Drive",
        base_url="https://www.googleapis.com",
        per_second=10.0,  # Drive: 12,000 requests a minute per user
        timeout=60.0,
        oauth=OAuth(
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            ("https://www.googleapis.com/auth/drive",),
            {"access_type": "offline", "prompt": "consent"},
        ),
        errors=ErrorRules(is_transient=is_rate_limited),
        nodes="gdrive.*",
    )
)
PROVIDER = DESCRIPTOR.name
DEFAULT_BASE_URL = DESCRIPTOR.base_url
DRIVE = RestProvider(DESCRIPTOR, message_of=message_of)


def _object(response: httpx.Response) -> dict[str, Any]:
    """A Drive answer that must be a JSON object (a ProviderError otherwise)."""
    body = DRIVE.json_of(response)
    if not isinstance(body, dict):
        raise ProviderError(f"Drive answered {response.status_code} without a JSON object", provider=PROVIDER)
    return body


def q_string(value: str) -> str:
    """``value`` as a quoted string literal of Drive's ``q`` syntax (backslash, then quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def file_path(file_id: str, suffix: str = "") -> str:
    return f"{FILES_PATH}/{quote(file_id, safe='')}{suffix}"


async def list_files(ctx: NodeContext, q: str | None, limit: int) -> list[dict[str, Any]]:
    """files.list for ``q`` (None: every file), following ``nextPageToken`` until ``limit``
    files or the last page (Drive may return short pages before the last one)."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while len(found) < limit:
        params: dict[str, Any] = {
            "pageSize": min(limit - len(found), MAX_PAGE_SIZE),
            "fields": f"nextPageToken,files({FILE_FIELDS})",
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
        }
        if q:
            params["q"] = q
        if token:
            params["pageToken"] = token
        page = DRIVE.json_of(await DRIVE.request(ctx, "GET", FILES_PATH, params=params))
        found.extend(page.get("files") or [])
        token = page.get("nextPageToken")
        if not token:
            break
    return found[:limit]


async def get_file(ctx: NodeContext, file_id: str, fields: str = FILE_FIELDS) -> dict[str, Any]:
    """files.get: one file's metadata."""
    params = {"fields": fields, "supportsAllDrives": "true"}
    return _object(await DRIVE.request(ctx, "GET", file_path(file_id), params=params))


async def download(ctx: NodeContext, file_id: str) -> bytes:
    """files.get with ``alt=media``: a binary file's bytes."""
    params = {"alt": "media", "supportsAllDrives": "true"}
    return (await DRIVE.request(ctx, "GET", file_path(file_id), params=params)).content


async def export(ctx: NodeContext, file_id: str, mime: str) -> bytes:
    """files.export: a Google Docs/Sheets/Slides file converted to ``mime`` (Drive caps it at 10 MB)."""
    return (await DRIVE.request(ctx, "GET", file_path(file_id, "/export"), params={"mimeType": mime})).content


def multipart_related(metadata: Mapping[str, Any], content: bytes, mime: str) -> tuple[bytes, str]:
    """A ``multipart/related`` body (JSON metadata part, then the media part) and its content type."""
    boundary = f"switchboard-{uuid.uuid4().hex}"
    body = b"".join(
        [
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(dict(metadata)).encode(),
            f"\r\n--{boundary}\r\nContent-Type: {mime}\r\n\r\n".encode(),
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/related; boundary={boundary}"


async def upload(ctx: NodeContext, metadata: Mapping[str, Any], content: bytes, mime: str) -> dict[str, Any]:
    """files.create with ``uploadType=multipart``: metadata and bytes in one request."""
    body, content_type = multipart_related(metadata, content, mime)
    params = {"uploadType": "multipart", "fields": FILE_FIELDS, "supportsAllDrives": "true"}
    response = await DRIVE.request(
        ctx, "POST", UPLOAD_PATH, params=params, content=body, headers={"Content-Type": content_type}
    )
    return _object(response)
