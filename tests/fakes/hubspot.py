"""A fake HubSpot CRM v3 API (the endpoints the HubSpot nodes use) on a FakeHTTP server.

In-memory contacts, deals and notes with their associations, speaking HubSpot's request and
response shapes:

* ``POST /crm/v3/objects/contacts/search``: ``filterGroups`` (groups ORed, filters ANDed;
  EQ, NEQ, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN), ``query`` (a case-insensitive
  substring of email, firstname or lastname), ``properties``, ``limit`` (at most 200) and
  ``after`` paging: ``{"total", "results", "paging": {"next": {"after", "link"}}}``;
* ``POST /crm/v3/objects/contacts/batch/upsert``: ``inputs`` of ``{idProperty: "email", id,
  properties}``; creates or updates by email and reports ``new`` per result;
* ``POST /crm/v3/objects/{deals,notes}``: ``properties`` and ``associations`` (the type id
  decides the target object type, as in HubSpot: deal->contact 3, note->contact 202,
  note->deal 214); 201 with the new record;
* ``GET /crm/v3/objects/{type}/{id}``: the record, or 404.

Bad input answers 400 with HubSpot's ``VALIDATION_ERROR`` body (unknown properties, bad
emails, invalid associations...), unknown ids 404 with HubSpot's ``OBJECT_NOT_FOUND`` body.
With ``token`` it accepts only that bearer token (a private-app token); with FakeOAuth on the
same server, the tokens FakeOAuth issues.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.fakes.http import FakeHTTP, Recorded, Reply

API = "/crm/v3/objects"
SEARCH_PATH = f"{API}/contacts/search"
UPSERT_PATH = f"{API}/contacts/batch/upsert"
DEALS_PATH = f"{API}/deals"
NOTES_PATH = f"{API}/notes"

MAX_PAGE = 200
MAX_SEARCH_RESULTS = 10_000
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

#: Properties each object type knows (HubSpot rejects others with PROPERTY_DOESNT_EXIST).
KNOWN_PROPERTIES: dict[str, set[str]] = {
    "contacts": {
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "website",
        "jobtitle",
        "city",
        "country",
        "lifecyclestage",
        "hs_lead_status",
        "hubspot_owner_id",
    },
    "deals": {
        "dealname",
        "dealstage",
        "pipeline",
        "amount",
        "closedate",
        "dealtype",
        "description",
        "hubspot_owner_id",
    },
    "notes": {"hs_note_body", "hs_timestamp", "hubspot_owner_id", "hs_attachment_ids"},
}
READ_ONLY = {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"}
DEFAULT_SEARCH_PROPERTIES = ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"]
DATETIME_PROPERTIES = {"closedate", "hs_timestamp"}
NUMBER_PROPERTIES = {"amount"}
REQUIRED_PROPERTIES = {"notes": {"hs_timestamp"}}
#: HUBSPOT_DEFINED association type id -> target object type, per source object type.
ASSOCIATION_TYPES: dict[str, dict[int, str]] = {
    "deals": {3: "contacts", 341: "companies"},
    "notes": {202: "contacts", 214: "deals", 190: "companies"},
}
OPERATORS = {"EQ", "NEQ", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN"}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category, **extra}


def validation_error(message: str, **extra: Any) -> Reply:
    return Reply(400, error_body(message, "VALIDATION_ERROR", **extra))


def invalid_properties(*problems: tuple[str, str, str]) -> Reply:
    """HubSpot's property validation error: a JSON list packed into the message."""
    items = [
        {"isValid": False, "message": message, "error": code, "name": name, "localizedErrorMessage": message}
        for name, code, message in problems
    ]
    return validation_error(f"Property values were not valid: {json.dumps(items)}")


def rate_limited(retry_after: str | None = None) -> Reply:
    """HubSpot's 429 (its ten-secondly limit), optionally with a Retry-After header."""
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    return Reply(429, body, {"Retry-After": retry_after} if retry_after else {})


class _Invalid(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class FakeHubSpot:
    """The CRM objects live in ``objects[type][id]`` as HubSpot records; associations in
    ``associations`` as ``(from_type, from_id, to_type, to_id, type_id)``."""

    def __init__(self, http: FakeHTTP, *, token: str | None = None) -> None:
        self.http = http
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "deals": {}, "notes": {}}
        self.associations: list[tuple[str, str, str, str, int]] = []
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        if token is not None:
            http.require_token(token)
        http.route("POST", SEARCH_PATH, self._guard(self._search))
        http.route("POST", UPSERT_PATH, self._guard(self._upsert))
        http.route("POST", DEALS_PATH, self._guard(lambda r: self._create("deals", r)))
        http.route("POST", NOTES_PATH, self._guard(lambda r: self._create("notes", r)))
        http.route("GET", API + "/", self._guard(self._get), prefix=True)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    # -- test helpers -------------------------------------------------------------------

    def fail_next(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``(method, path)`` with ``replies`` (e.g. a 429), then
        behave normally again."""
        for reply in replies:
            self.http.fail_next(reply, method=method, path=path, prefix=False)

    def add_contact(self, **properties: str) -> str:
        """Store a contact with these properties; returns its id."""
        with self._lock:
            return self._new("contacts", {k: str(v) for k, v in properties.items()})["id"]

    def contacts(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.objects["contacts"].values())

    def associated(self, from_type: str, from_id: str) -> list[tuple[str, str, int]]:
        """``(to_type, to_id, type_id)`` of one record's associations."""
        with self._lock:
            return [(t, ti, k) for f, fi, t, ti, k in self.associations if (f, fi) == (from_type, from_id)]

    def requests(self, path: str, method: str = "POST") -> list[Recorded]:
        return self.http.calls(path, method)

    # -- plumbing -----------------------------------------------------------------------

    def _guard(self, handler: Callable[[Any], Reply]) -> Callable[[Recorded], Reply]:
        def handle(request: Recorded) -> Reply:
            try:
                if request.method != "GET":
                    try:
                        body = json.loads(request.body or b"null")
                    except ValueError:
                        return validation_error("Invalid input JSON: the request body is not JSON")
                    if not isinstance(body, dict):
                        return validation_error("Invalid input JSON: a request body object was expected")
                    with self._lock:
                        return handler(body)
                with self._lock:
                    return handler(request)
            except _Invalid as invalid:
                return invalid.reply

        return handle

    def _new(self, object_type: str, properties: dict[str, str]) -> dict[str, Any]:
        object_id = str(next(self._ids))
        stamp = now()
        record = {
            "id": object_id,
            "properties": {**properties, "hs_object_id": object_id, "createdate": stamp, "lastmodifieddate": stamp},
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.objects[object_type][object_id] = record
        return record

    def _check_properties(self, object_type: str, properties: Any) -> dict[str, str]:
        if not isinstance(properties, dict):
            raise _Invalid(validation_error("Invalid input JSON: `properties` must be an object"))
        problems: list[tuple[str, str, str]] = []
        checked: dict[str, str] = {}
        for name, value in properties.items():
            if name in READ_ONLY:
                problems.append(
                    (name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                )
                continue
            if name not in KNOWN_PROPERTIES[object_type]:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                continue
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            if name == "email" and text and not EMAIL.match(text):
                problems.append((name, "INVALID_EMAIL", f"Email address {text} is invalid"))
            elif name in NUMBER_PROPERTIES and text and not re.fullmatch(r"-?\d+(\.\d+)?", text):
                problems.append((name, "INVALID_DECIMAL", f"{text} was not a valid number."))
            elif name in DATETIME_PROPERTIES and text and not _is_datetime(text):
                problems.append((name, "INVALID_DATE", f"{text} is not a valid date-time (ISO 8601 or epoch ms)."))
            checked[name] = text
        for name in sorted(REQUIRED_PROPERTIES.get(object_type, set()) - checked.keys()):
            problems.append((name, "REQUIRED", f'Property "{name}" is required'))
        if problems:
            raise _Invalid(invalid_properties(*problems))
        return checked

    # -- endpoints ----------------------------------------------------------------------

    def _search(self, body: dict[str, Any]) -> Reply:
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            return validation_error(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        after = body.get("after") or "0"
        if not str(after).isdigit():
            return validation_error(f"after must be a numeric string, got {after!r}")
        offset = int(after)
        if offset + limit > MAX_SEARCH_RESULTS:
            return validation_error(f"The search results are limited to {MAX_SEARCH_RESULTS} records")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            return validation_error("too many filters: at most 5 filterGroups of at most 6 filters each")
        for group in groups:
            for f in group.get("filters") or []:
                if f.get("operator") not in OPERATORS:
                    return validation_error(f"unsupported filter operator {f.get('operator')!r}")
                if not isinstance(f.get("propertyName"), str):
                    return validation_error("a filter needs a propertyName")
        query = body.get("query")
        matches = [
            c
            for _, c in sorted(self.objects["contacts"].items(), key=lambda item: int(item[0]))
            if (not groups or any(all(_matches(c, f) for f in g.get("filters") or []) for g in groups))
            and (not query or _matches_query(c, str(query)))
        ]
        wanted = list(body.get("properties") or DEFAULT_SEARCH_PROPERTIES)
        wanted += [p for p in ("hs_object_id", "createdate", "lastmodifieddate") if p not in wanted]
        page = matches[offset : offset + limit]
        results = [
            {
                "id": c["id"],
                "properties": {p: c["properties"].get(p) for p in wanted},
                "createdAt": c["createdAt"],
                "updatedAt": c["updatedAt"],
                "archived": False,
            }
            for c in page
        ]
        answer: dict[str, Any] = {"total": len(matches), "results": results}
        if offset + limit < len(matches):
            following = str(offset + limit)
            answer["paging"] = {"next": {"after": following, "link": f"?after={following}"}}
        return Reply(200, answer)

    def _upsert(self, body: dict[str, Any]) -> Reply:
        started = now()
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
            return validation_error("inputs must hold between 1 and 100 records")
        emails = [str(i.get("id", "")).lower() for i in inputs if isinstance(i, dict)]
        if len(set(emails)) != len(emails):
            return validation_error("Duplicate IDs found in batch input")
        results = []
        for item in inputs:
            if item.get("idProperty") != "email":
                return validation_error(
                    f"{item.get('idProperty')!r} is not a unique property of contacts (this fake supports email)"
                )
            email = str(item.get("id") or "")
            properties = self._check_properties("contacts", {**(item.get("properties") or {}), "email": email})
            if not properties["email"]:
                return validation_error("id is required when idProperty is email")
            existing = next(
                (
                    c
                    for c in self.objects["contacts"].values()
                    if c["properties"].get("email", "").lower() == email.lower()
                ),
                None,
            )
            if existing is None:
                record, created = self._new("contacts", properties), True
            else:
                stamp = now()
                existing["properties"].update({k: v for k, v in properties.items() if k != "email"})
                existing["properties"]["lastmodifieddate"] = stamp
                existing["updatedAt"] = stamp
                record, created = existing, False
            shown = {
                k: record["properties"].get(k) for k in [*properties, "hs_object_id", "createdate", "lastmodifieddate"]
            }
            results.append({**record, "properties": shown, "new": created})
        return Reply(200, {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now()})

    def _create(self, object_type: str, body: dict[str, Any]) -> Reply:
        properties = self._check_properties(object_type, body.get("properties") or {})
        links: list[tuple[str, str, int]] = []
        invalid: list[str] = []
        for association in body.get("associations") or []:
            to_id = str((association.get("to") or {}).get("id", ""))
            for kind in association.get("types") or []:
                type_id = kind.get("associationTypeId")
                target = ASSOCIATION_TYPES[object_type].get(type_id)
                if kind.get("associationCategory") != "HUBSPOT_DEFINED" or target is None:
                    return validation_error(
                        f"{kind.get('associationCategory')} association type {type_id} is not valid for {object_type}"
                    )
                if to_id not in self.objects.get(target, {}):
                    invalid.append(f"{target.rstrip('s').upper()}={to_id} is not valid")
                links.append((target, to_id, int(type_id)))
        if invalid:
            return validation_error("One or more associations are invalid", context={"INVALID_OBJECT_IDS": invalid})
        record = self._new(object_type, properties)
        for target, to_id, type_id in links:
            self.associations.append((object_type, record["id"], target, to_id, type_id))
        return Reply(201, record)

    def _get(self, request: Recorded) -> Reply:
        object_type, _, object_id = request.path.removeprefix(API + "/").partition("/")
        record = self.objects.get(object_type, {}).get(object_id)
        if record is None:
            return Reply(404, error_body("resource not found", "OBJECT_NOT_FOUND"))
        return Reply(200, record)


def _is_datetime(text: str) -> bool:
    if text.isdigit():
        return True
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _matches(contact: dict[str, Any], f: dict[str, Any]) -> bool:
    value = contact["properties"].get(f["propertyName"])
    wanted = str(f.get("value", "")).lower()
    operator = f["operator"]
    if operator == "HAS_PROPERTY":
        return bool(value)
    if operator == "NOT_HAS_PROPERTY":
        return not value
    if operator == "CONTAINS_TOKEN":
        return bool(value) and wanted in re.split(r"[\s@.]+", str(value).lower())
    equal = value is not None and str(value).lower() == wanted
    return equal if operator == "EQ" else not equal


def _matches_query(contact: dict[str, Any], query: str) -> bool:
    needle = query.lower()
    return any(needle in str(contact["properties"].get(p) or "").lower() for p in ("email", "firstname", "lastname"))
