"""A fake Google Drive v3 API (the endpoints the gdrive nodes use) on a FakeHTTP server.

Routes, shaped like Drive's: ``GET /drive/v3/files`` (files.list), ``GET /drive/v3/files/{id}``
(files.get; ``alt=media`` for the bytes), ``GET /drive/v3/files/{id}/export?mimeType=``
(files.export, Google types only) and ``POST /upload/drive/v3/files?uploadType=multipart``
(files.create, the ``multipart/related`` body parsed for real). Errors use Google's body
``{"error": {"code", "message", "errors": [{"domain", "reason", "message", ...}]}}``.

The ``q`` subset files.list understands (anything else answers 400 ``invalid``, as Drive does
for a query it cannot parse)::

    'ID' in parents                  string literals: single quotes, \\' and \\\\ escapes
    trashed = true|false
    name contains 'x'                prefix match on the name or one of its words, any case
    name = 'x' / name != 'x'
    mimeType = '...' / mimeType != '...'
    term and term, term or term, ( ... )    (`and` binds tighter than `or`; no `not`)

``fields`` is honoured for the top-level keys and ``files(...)``; ``pageSize`` must be 1-1000
(default 100); ``nextPageToken`` is opaque. Requests need ``Authorization: Bearer <token>``
(``token=`` here, or FakeOAuth's tokens).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.http import FakeHTTP, Recorded, Reply

FILES = "/drive/v3/files"
UPLOAD = "/upload/drive/v3/files"
GOOGLE = "application/vnd.google-apps."
DOC = GOOGLE + "document"
SHEET = GOOGLE + "spreadsheet"
SLIDES = GOOGLE + "presentation"
DRAWING = GOOGLE + "drawing"
FOLDER = GOOGLE + "folder"

#: Drive's export table (ref-export-formats), by Google type.
EXPORTS: dict[str, set[str]] = {
    DOC: {
        "text/plain",
        "application/pdf",
        "text/html",
        "application/rtf",
        "text/markdown",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    },
    SHEET: {
        "text/csv",
        "text/tab-separated-values",
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    },
    SLIDES: {
        "text/plain",
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    },
    DRAWING: {"application/pdf", "image/png", "image/jpeg", "image/svg+xml"},
}
#: Drive caps exported content at 10 MB.
EXPORT_LIMIT = 10 * 1024 * 1024
DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")


def google_error(status: int, reason: str, message: str, *, domain: str = "global", **extra: str) -> Reply:
    """A reply with Google's error body."""
    detail = {"domain": domain, "reason": reason, "message": message, **extra}
    return Reply(status, {"error": {"code": status, "message": message, "errors": [detail]}})


def rate_limited(*, user: bool = False, retry_after: str | None = None) -> Reply:
    """Drive's 403 rate limit (``userRateLimitExceeded`` with ``user``)."""
    reply = google_error(
        403,
        "userRateLimitExceeded" if user else "rateLimitExceeded",
        "User Rate Limit Exceeded" if user else "Rate Limit Exceeded",
        domain="usageLimits",
    )
    return Reply(reply.status, reply.body, {"Retry-After": retry_after} if retry_after else {})


def too_many_requests(retry_after: str = "0") -> Reply:
    """Drive's 429."""
    reply = google_error(429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")
    return Reply(429, reply.body, {"Retry-After": retry_after})


def not_found(file_id: str) -> Reply:
    return google_error(404, "notFound", f"File not found: {file_id}.", location="fileId", locationType="parameter")


def invalid(location: str, message: str = "Invalid Value") -> Reply:
    return google_error(400, "invalid", message, location=location, locationType="parameter")


@dataclass
class StoredFile:
    id: str
    name: str
    mimeType: str
    parents: list[str]
    content: bytes = b""
    trashed: bool = False
    modifiedTime: str = "2024-05-01T10:00:00.000Z"

    def resource(self) -> dict[str, Any]:
        """The File resource, every field the fake knows."""
        body: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mimeType,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "modifiedTime": self.modifiedTime,
            "webViewLink": web_view_link(self.id, self.mimeType),
        }
        if not self.mimeType.startswith(GOOGLE):
            body["size"] = str(len(self.content))  # int64: a string in Drive's JSON
        return body


def web_view_link(file_id: str, mime: str) -> str:
    kinds = {DOC: "document", SHEET: "spreadsheets", SLIDES: "presentation", DRAWING: "drawings"}
    if mime == FOLDER:
        return f"https://drive.google.com/drive/folders/{file_id}"
    if mime in kinds:
        return f"https://docs.google.com/{kinds[mime]}/d/{file_id}/edit?usp=drivesdk"
    return f"https://drive.google.com/file/d/{file_id}/view?usp=drivesdk"


@dataclass(frozen=True)
class Upload:
    """What the fake parsed out of one multipart upload."""

    metadata: dict[str, Any]
    media_type: str
    content: bytes
    file_id: str


class QueryError(ValueError):
    pass


Predicate = Callable[[StoredFile], bool]
_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(\(|\))|(!=|=)|([A-Za-z_]+))")


def _tokens(q: str) -> list[str]:
    tokens, position = [], 0
    while position < len(q.rstrip()):
        match = _TOKEN.match(q, position)
        if match is None:
            raise QueryError(f"cannot parse {q[position:]!r}")
        tokens.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tokens


def _literal(token: str) -> str:
    if len(token) < 2 or token[0] != "'" or token[-1] != "'":
        raise QueryError(f"expected a quoted string, got {token!r}")
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_query(q: str) -> Predicate:
    """The predicate a ``q`` string of the supported subset means (``and`` binds tighter than ``or``)."""
    tokens = deque(_tokens(q))

    def take() -> str:
        if not tokens:
            raise QueryError("unexpected end of query")
        return tokens.popleft()

    def term() -> Predicate:
        first = take()
        if first == "(":
            inner = disjunction()
            if take() != ")":
                raise QueryError("missing )")
            return inner
        if first.startswith("'"):
            value = _literal(first)
            if (take(), take()) != ("in", "parents"):
                raise QueryError("only `'ID' in parents` takes a string first")
            return lambda f: value in f.parents
        operator = take()
        if first == "trashed" and operator == "=":
            flag = take()
            if flag not in ("true", "false"):
                raise QueryError("trashed takes true or false")
            return lambda f: f.trashed == (flag == "true")
        if first == "name" and operator == "contains":
            prefix = _literal(take()).lower()
            return lambda f: (
                f.name.lower().startswith(prefix)
                or any(word.startswith(prefix) for word in re.split(r"[^0-9a-z]+", f.name.lower()))
            )
        if first in ("name", "mimeType") and operator in ("=", "!="):
            value = _literal(take())
            equal = operator == "="
            return lambda f: (getattr(f, first) == value) == equal
        raise QueryError(f"unsupported term {first} {operator}")

    def conjunction() -> Predicate:
        terms = [term()]
        while tokens and tokens[0] == "and":
            tokens.popleft()
            terms.append(term())
        return lambda f: all(t(f) for t in terms)

    def disjunction() -> Predicate:
        alternatives = [conjunction()]
        while tokens and tokens[0] == "or":
            tokens.popleft()
            alternatives.append(conjunction())
        return lambda f: any(a(f) for a in alternatives)

    predicate = disjunction()
    if tokens:
        raise QueryError(f"unsupported {tokens[0]!r}")
    return predicate


def _select(resource: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    keys = fields or list(DEFAULT_FIELDS)
    return {key: resource[key] for key in keys if key in resource}


def _split_fields(fields: str) -> tuple[list[str], list[str] | None]:
    """``"nextPageToken,files(id,name)"`` -> (top-level keys, the files(...) keys or None)."""
    match = re.search(r"files\(([^)]*)\)", fields)
    inner = [f.strip() for f in match.group(1).split(",") if f.strip()] if match else None
    top = [f.strip() for f in re.sub(r"files\([^)]*\)", "files", fields).split(",") if f.strip()]
    return top, inner


class FakeDrive:
    """Drive's file store in memory. ``token``: the one bearer token accepted (omit it when
    FakeOAuth decides which tokens are valid)."""

    def __init__(self, http: FakeHTTP, *, token: str | None = None) -> None:
        self.http = http
        self.files: dict[str, StoredFile] = {}
        self.uploads: list[Upload] = []
        self.export_limit = EXPORT_LIMIT
        #: Serve at most this many files per page (Drive may return short pages).
        self.page_cap: int | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        if token is not None:
            http.require_token(token)
        http.route("GET", FILES, self._list)
        http.route("GET", FILES + "/", self._get, prefix=True)
        http.route("POST", UPLOAD, self._upload)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def add(
        self,
        file_id: str,
        name: str,
        mime: str = "application/octet-stream",
        content: bytes = b"",
        *,
        parents: tuple[str, ...] = ("root",),
        trashed: bool = False,
    ) -> StoredFile:
        stored = StoredFile(file_id, name, mime, list(parents), content, trashed)
        self.files[file_id] = stored
        return stored

    def fail_next(self, *replies: Reply) -> None:
        """Answer the next Drive requests with ``replies`` (e.g. a 429), then behave again."""
        for reply in replies:
            self.http.fail_next(reply, path=(FILES, UPLOAD))

    def requests(self, path: str = FILES, method: str = "GET") -> list[Recorded]:
        return self.http.calls(path, method)

    # --- files.list -------------------------------------------------------------------------

    def _list(self, request: Recorded) -> Reply:
        query = {k: v[0] for k, v in request.query.items()}
        try:
            predicate = parse_query(query["q"]) if query.get("q") else None
        except QueryError:
            return invalid("q")
        try:
            size = int(query.get("pageSize", "100"))
        except ValueError:
            return invalid("pageSize")
        if not 1 <= size <= 1000:
            return invalid("pageSize", f"Invalid value '{size}'. Values must be within the range: [1, 1000]")
        start = 0
        if "pageToken" in query:
            try:
                start = int(base64.urlsafe_b64decode(query["pageToken"]).decode().removeprefix("offset:"))
            except ValueError:
                return invalid("pageToken")
        matching = [f for f in self.files.values() if predicate is None or predicate(f)]
        served = min(size, self.page_cap or size)
        page = matching[start : start + served]
        top, inner = _split_fields(query.get("fields", ""))
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [_select(f.resource(), inner) for f in page],
        }
        if start + served < len(matching):
            body["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{start + served}".encode()).decode()
        if top:
            body = {key: body[key] for key in top if key in body}
        return Reply(200, body)

    # --- files.get / alt=media / files.export ----------------------------------------------

    def _get(self, request: Recorded) -> Reply:
        rest = request.path[len(FILES) + 1 :]
        file_id, _, action = rest.partition("/")
        query = {k: v[0] for k, v in request.query.items()}
        stored = self.files.get(file_id)
        if stored is None:
            return not_found(file_id)
        if action == "export":
            return self._export(stored, query.get("mimeType"))
        if action:
            return Reply(404, {"error": {"code": 404, "message": "Not Found"}})
        if query.get("alt") == "media":
            if stored.mimeType.startswith(GOOGLE):
                return google_error(
                    403,
                    "fileNotDownloadable",
                    "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                    location="alt",
                    locationType="parameter",
                )
            return Reply(200, bytes(stored.content), content_type=stored.mimeType)
        fields = [f.strip() for f in query.get("fields", "").split(",") if f.strip()]
        return Reply(200, _select(stored.resource(), fields))

    def _export(self, stored: StoredFile, mime: str | None) -> Reply:
        if not mime:
            return google_error(400, "required", "Required parameter: mimeType", location="mimeType")
        if stored.mimeType not in EXPORTS:
            return google_error(403, "fileNotExportable", "Export only supports Docs Editors files.")
        if mime not in EXPORTS[stored.mimeType]:
            return google_error(
                400,
                "badRequest",
                "The requested conversion is not supported.",
                location="convertTo",
                locationType="parameter",
            )
        if len(stored.content) > self.export_limit:
            return google_error(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        content = b"%PDF-1.4\n% fake export\n" + stored.content if mime == "application/pdf" else stored.content
        return Reply(200, bytes(content), content_type=mime)

    # --- files.create (multipart upload) ----------------------------------------------------

    def _upload(self, request: Recorded) -> Reply:
        query = {k: v[0] for k, v in request.query.items()}
        if query.get("uploadType") != "multipart":
            return invalid("uploadType", "Invalid value for uploadType (this fake speaks multipart)")
        try:
            metadata, media_type, content = parse_multipart_related(
                request.headers.get("content-type", ""), request.body
            )
        except ValueError as exc:
            return google_error(400, "badContent", f"Bad multipart body: {exc}")
        parents = metadata.get("parents") or ["root"]
        for parent in parents:
            if parent != "root" and parent not in self.files:
                return not_found(parent)
        with self._lock:
            file_id = f"upload-{next(self._ids)}"
        stored = StoredFile(
            file_id, str(metadata.get("name") or "Untitled"), metadata.get("mimeType") or media_type, parents, content
        )
        self.files[file_id] = stored
        self.uploads.append(Upload(metadata, media_type, content, file_id))
        fields = [f.strip() for f in query.get("fields", "").split(",") if f.strip()]
        return Reply(200, _select(stored.resource(), fields))


def parse_multipart_related(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """A ``multipart/related`` upload: (JSON metadata, the media part's type, its bytes)."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/related":
        raise ValueError(f"Content-Type is {kind.strip()!r}, not multipart/related")
    match = re.search(r'boundary="?([^";]+)"?', rest)
    if match is None:
        raise ValueError("no boundary")
    delimiter = b"--" + match.group(1).encode()
    sections = body.split(b"\r\n" + delimiter)
    if not sections[0].startswith(delimiter):
        raise ValueError("the body does not start with the boundary")
    sections[0] = sections[0][len(delimiter) :]
    if not sections[-1].startswith(b"--"):
        raise ValueError("no closing boundary")
    parts = []
    for section in sections[:-1]:
        if not section.startswith(b"\r\n"):
            raise ValueError("a boundary line must end with CRLF")
        head, separator, payload = section[2:].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part has no blank line after its headers")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in head.decode().split("\r\n"))
        )
        parts.append((headers.get("content-type", ""), payload))
    if len(parts) != 2:
        raise ValueError(f"expected 2 parts (metadata, media), got {len(parts)}")
    (meta_type, meta_bytes), (media_type, media) = parts
    if not meta_type.lower().startswith("application/json"):
        raise ValueError(f"the metadata part is {meta_type!r}, not application/json")
    metadata = json.loads(meta_bytes)
    if not isinstance(metadata, dict):
        raise ValueError("the metadata is not a JSON object")
    return metadata, media_type or "application/octet-stream", media
