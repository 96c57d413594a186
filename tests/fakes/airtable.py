"""A fake Airtable Web API (records endpoints) on a FakeHTTP server, tables kept in memory.

>>> airtable = FakeAirtable(fake_http, token="patTEST")
>>> tasks = airtable.add_table(BASE, "Tasks", [{"Name": "a"}], fields=["Name", "Status"])
>>> airtable.fail_next(429, headers={"Retry-After": "0"})   # the next request only

Implements, under ``/v0/{baseId}/{tableIdOrName}`` (the table segment percent-decoded):

* ``GET`` list: ``pageSize`` (default and maximum 100), ``offset`` (opaque ``itr.../rec...``
  tokens), ``maxRecords``, ``view``, ``fields[]``, ``sort[i][field]``/``sort[i][direction]``,
  ``filterByFormula`` -> ``{"records": [...], "offset"?}``;
* ``GET .../{recordId}`` -> one record, or 404 ``{"error": "NOT_FOUND"}``;
* ``POST`` create: ``{"records": [{"fields"}], "typecast"}`` (at most 10) or ``{"fields"}``;
* ``PATCH``/``PUT`` (merge/replace) ``{"records": [{"id", "fields"}]}`` (at most 10), with
  ``performUpsert: {"fieldsToMergeOn": [...]}`` (1-3 fields; records need no id) answering
  ``createdRecords``/``updatedRecords`` too; ``PATCH``/``PUT .../{recordId}`` with ``{"fields"}``;
* ``DELETE ?records[]=...`` (at most 10) -> ``{"records": [{"id", "deleted": true}]}``, and
  ``DELETE .../{recordId}``.

Errors use Airtable's shapes: ``{"error": {"type": ..., "message": ...}}`` with 422 for a bad
request (more than 10 records, unknown field/view, bad formula), 403
``INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND`` for an unknown base or table, and 404
``{"error": "NOT_FOUND"}`` for an unknown record. Messages paraphrase Airtable's.

Limits of the fake: ``filterByFormula`` understands only a single comparison
``{Field}='text'``, ``{Field}="text"`` or ``{Field}=number`` (``!=`` too) and the empty formula;
anything else is a 422 ``INVALID_FILTER_BY_FORMULA``. A view is a fixed field -> value filter.
Field types, ``typecast`` conversions, ``cellFormat`` and the POST ``listRecords`` fallback for
very long URLs are not modelled; unknown field names are rejected only for tables declared with
``fields``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from tests.fakes.http import FakeHTTP, Recorded, Reply

PREFIX = "/v0/"
MAX_BATCH = 10
MAX_PAGE_SIZE = 100
CREATED_TIME = "2024-05-01T09:30:00.000Z"

_FORMULA = re.compile(r"""^\s*\{([^{}]+)\}\s*(!=|=)\s*(?:'([^']*)'|"([^"]*)"|(-?\d+(?:\.\d+)?))\s*$""")


class AirtableFailure(Exception):
    """Raised inside the fake to answer with an Airtable error."""

    def __init__(self, status: int, error: Any) -> None:
        super().__init__(status, error)
        self.reply = Reply(status, {"error": error})


def _invalid(kind: str, message: str) -> AirtableFailure:
    return AirtableFailure(422, {"type": kind, "message": message})


def _bad_request() -> AirtableFailure:
    return _invalid("INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed. Check your request data.")


@dataclass
class FakeTable:
    """One table: its records (``{"id", "createdTime", "fields"}``) in creation order."""

    base: str
    id: str
    name: str
    fields: list[str] | None = None
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def check_fields(self, names: Any) -> None:
        if self.fields is None:
            return
        for name in names:
            if name not in self.fields:
                raise _invalid("UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')

    def find(self, record_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r["id"] == record_id), None)


class FakeAirtable:
    """Airtable's records API in memory; every request is also recorded by the FakeHTTP."""

    def __init__(self, http: FakeHTTP, *, token: str | None = None) -> None:
        """``token``: the one bearer token accepted (leave None when a FakeOAuth guards ``http``)."""
        self.http = http
        self.tables: list[FakeTable] = []
        self._ids = itertools.count(1)
        self._iterators: dict[str, deque[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        if token is not None:
            http.require_token(token)
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            http.route(method, PREFIX, self._handle, prefix=True)

    @property
    def base_url(self) -> str:
        """The credential's ``base_url`` (pyairtable adds ``/v0``)."""
        return self.http.base_url

    @staticmethod
    def path(base: str, table: str, record_id: str | None = None) -> str:
        """The request path the fake records (the table name percent-encoded like clients do)."""
        path = f"{PREFIX}{base}/{quote(table, safe='')}"
        return f"{path}/{record_id}" if record_id else path

    def new_id(self, prefix: str = "rec") -> str:
        return f"{prefix}{next(self._ids):014d}"

    def add_table(
        self,
        base: str,
        name: str,
        records: Iterable[dict[str, Any]] = (),
        *,
        fields: list[str] | None = None,
        views: dict[str, dict[str, Any]] | None = None,
    ) -> FakeTable:
        """A table holding ``records`` (field maps); ``fields`` declares its field names,
        ``views`` maps a view name to the field values its records must have."""
        table = FakeTable(base=base, id=self.new_id("tbl"), name=name, fields=fields, views=views or {})
        for values in records:
            table.records.append(self._new_record(values))
        with self._lock:
            self.tables.append(table)
        return table

    def fail_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, *, method: str | None = None
    ) -> None:
        """Answer the next Airtable request (of ``method``, if given) with this reply instead."""
        self.http.fail_next(status, body, headers, method=method, path=PREFIX)

    def requests(self, method: str | None = None) -> list[Recorded]:
        """Every request the fake received under ``/v0/`` (oldest first)."""
        return [
            r for r in list(self.http.requests) if r.path.startswith(PREFIX) and (method is None or r.method == method)
        ]

    # -- dispatch -------------------------------------------------------------------------

    def _handle(self, request: Recorded) -> Reply:
        with self._lock:
            try:
                return self._dispatch(request)
            except AirtableFailure as failure:
                return failure.reply

    def _dispatch(self, request: Recorded) -> Reply:
        parts = [unquote(p) for p in request.path[len(PREFIX) :].split("/")]
        if len(parts) not in (2, 3) or not all(parts):
            return Reply(404, {"error": "NOT_FOUND"})
        table = self._table(parts[0], parts[1])
        record_id = parts[2] if len(parts) == 3 else None
        body = self._body(request)
        if record_id is not None:
            return self._one(request.method, table, record_id, body)
        if request.method == "GET":
            return self._list(table, request.query)
        if request.method == "POST":
            return self._create(table, body)
        if request.method in ("PATCH", "PUT"):
            return self._update_many(table, body, replace=request.method == "PUT")
        if request.method == "DELETE":
            return self._delete_many(table, request.query.get("records[]", []))
        return Reply(404, {"error": "NOT_FOUND"})

    def _table(self, base: str, id_or_name: str) -> FakeTable:
        for table in self.tables:
            if table.base == base and id_or_name in (table.id, table.name):
                return table
        raise AirtableFailure(
            403,
            {
                "type": "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "message": "Invalid permissions, or the requested model was not found. Check that both your "
                "user and your token have the required permissions, and that the model names and/or ids are correct.",
            },
        )

    @staticmethod
    def _body(request: Recorded) -> Any:
        if not request.body:
            return {}
        try:
            return json.loads(request.body)
        except ValueError:
            raise AirtableFailure(
                400, {"type": "INVALID_REQUEST_BODY", "message": "Could not parse request body"}
            ) from None

    # -- records --------------------------------------------------------------------------

    def _new_record(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.new_id(), "createdTime": CREATED_TIME, "fields": _stored(values)}

    @staticmethod
    def _shown(record: dict[str, Any], only: list[str] | None = None) -> dict[str, Any]:
        """A record as the API returns it: empty fields left out, ``fields[]`` applied."""
        shown = {k: v for k, v in record["fields"].items() if not _empty(v)}
        if only is not None:
            shown = {k: v for k, v in shown.items() if k in only}
        return {"id": record["id"], "createdTime": record["createdTime"], "fields": shown}

    def _one(self, method: str, table: FakeTable, record_id: str, body: Any) -> Reply:
        record = table.find(record_id)
        if record is None:
            return Reply(404, {"error": "NOT_FOUND"})
        if method == "GET":
            return Reply(200, self._shown(record))
        if method in ("PATCH", "PUT"):
            fields = body.get("fields") if isinstance(body, dict) else None
            if not isinstance(fields, dict):
                raise _bad_request()
            table.check_fields(fields)
            record["fields"] = _stored(fields) if method == "PUT" else {**record["fields"], **_stored(fields)}
            return Reply(200, self._shown(record))
        if method == "DELETE":
            table.records.remove(record)
            return Reply(200, {"id": record_id, "deleted": True})
        return Reply(404, {"error": "NOT_FOUND"})

    def _list(self, table: FakeTable, query: dict[str, list[str]]) -> Reply:
        def one(name: str) -> str | None:
            return query[name][0] if name in query else None

        page_size = _int(one("pageSize"), MAX_PAGE_SIZE)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise _bad_request()
        if (offset := one("offset")) is not None:
            remaining = self._iterators.pop(offset, None)
            if remaining is None:
                raise _invalid("LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "This list records iterator is not available")
        else:
            remaining = deque(self._select(table, query))
            max_records = one("maxRecords")
            if max_records is not None:
                remaining = deque(itertools.islice(remaining, _int(max_records, 0)))
        page = [remaining.popleft() for _ in range(min(page_size, len(remaining)))]
        only = query.get("fields[]")
        if only is not None:
            table.check_fields(only)
        answer: dict[str, Any] = {"records": [self._shown(r, only) for r in page]}
        if remaining:
            token = f"itr{next(self._ids):014d}/{remaining[0]['id']}"
            self._iterators[token] = remaining
            answer["offset"] = token
        return Reply(200, answer)

    def _select(self, table: FakeTable, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        records = list(table.records)
        if "view" in query:
            view = query["view"][0]
            if view not in table.views:
                raise _invalid("VIEW_NAME_NOT_FOUND", f'Could not find view "{view}" in table "{table.name}"')
            wanted = table.views[view]
            records = [r for r in records if all(r["fields"].get(k) == v for k, v in wanted.items())]
        formula = query.get("filterByFormula", [""])[0]
        if formula.strip():
            matches = _formula(table, formula)
            records = [r for r in records if matches(r["fields"])]
        sorts: list[tuple[str, str]] = []
        for index in itertools.count():
            sort_field = query.get(f"sort[{index}][field]")
            if sort_field is None:
                break
            direction = query.get(f"sort[{index}][direction]", ["asc"])[0]
            if direction not in ("asc", "desc"):
                raise _bad_request()
            sorts.append((sort_field[0], direction))
        table.check_fields(name for name, _ in sorts)
        for name, direction in reversed(sorts):  # stable sorts, last key first
            records.sort(key=_by_field(name), reverse=direction == "desc")
        return records

    @staticmethod
    def _batch(body: Any) -> list[Any]:
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            raise _bad_request()
        if len(records) > MAX_BATCH:
            raise _bad_request()
        return records

    def _create(self, table: FakeTable, body: Any) -> Reply:
        if isinstance(body, dict) and "fields" in body and "records" not in body:
            if not isinstance(body["fields"], dict):
                raise _bad_request()
            table.check_fields(body["fields"])
            record = self._new_record(body["fields"])
            table.records.append(record)
            return Reply(200, self._shown(record))
        items = self._batch(body)
        for item in items:
            if not isinstance(item.get("fields"), dict):
                raise _bad_request()
            table.check_fields(item["fields"])
        created = [self._new_record(item["fields"]) for item in items]
        table.records.extend(created)
        return Reply(200, {"records": [self._shown(r) for r in created]})

    def _update_many(self, table: FakeTable, body: Any, *, replace: bool) -> Reply:
        items = self._batch(body)
        upsert = body.get("performUpsert")
        merge_on: list[str] | None = None
        if upsert is not None:
            merge_on = upsert.get("fieldsToMergeOn") if isinstance(upsert, dict) else None
            if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3:
                raise _bad_request()
            table.check_fields(merge_on)
        plan: list[tuple[dict[str, Any] | None, dict[str, Any]]] = []  # (existing or None, fields)
        for item in items:
            fields = item.get("fields")
            if not isinstance(fields, dict):
                raise _bad_request()
            table.check_fields(fields)
            if "id" in item:
                record = table.find(item["id"])
                if record is None:
                    raise _invalid("ROW_DOES_NOT_EXIST", f"Record ID {item['id']} does not exist in this table")
                plan.append((record, fields))
                continue
            if merge_on is None:
                raise _bad_request()
            missing = [name for name in merge_on if name not in fields]
            if missing:
                raise _invalid(
                    "INVALID_VALUE_FOR_COLUMN", f"Field {missing[0]!r} is required by fieldsToMergeOn but is missing"
                )
            matches = [r for r in table.records if all(r["fields"].get(n) == fields[n] for n in merge_on)]
            if len(matches) > 1:
                raise _invalid("INVALID_VALUE_FOR_COLUMN", "More than one record matches the fieldsToMergeOn values")
            plan.append((matches[0] if matches else None, fields))
        created: list[str] = []
        updated: list[str] = []
        answered: list[dict[str, Any]] = []
        for record, fields in plan:
            if record is None:
                record = self._new_record(fields)
                table.records.append(record)
                created.append(record["id"])
            else:
                record["fields"] = _stored(fields) if replace else {**record["fields"], **_stored(fields)}
                updated.append(record["id"])
            answered.append(self._shown(record))
        answer: dict[str, Any] = {"records": answered}
        if merge_on is not None:
            answer.update(createdRecords=created, updatedRecords=updated)
        return Reply(200, answer)

    def _delete_many(self, table: FakeTable, ids: list[str]) -> Reply:
        if not ids or len(ids) > MAX_BATCH:
            raise _bad_request()
        records = []
        for record_id in ids:
            record = table.find(record_id)
            if record is None:
                return Reply(404, {"error": "NOT_FOUND"})
            records.append(record)
        for record in records:
            table.records.remove(record)
        return Reply(200, {"records": [{"id": r["id"], "deleted": True} for r in records]})


def _empty(value: Any) -> bool:
    """Airtable leaves empty cells out of records: blank text, no items, an unchecked box."""
    return value is None or value is False or (isinstance(value, str | list) and not value)


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _bad_request() from None


def _by_field(name: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    """Sort key: empty cells first, then numbers, then text."""

    def key(record: dict[str, Any]) -> tuple[int, Any]:
        value = record["fields"].get(name)
        if value is None or value == "":
            return (0, "")
        if isinstance(value, bool | int | float):
            return (1, value)
        return (2, str(value))

    return key


def _formula(table: FakeTable, formula: str) -> Callable[[dict[str, Any]], bool]:
    """The fake's formula subset: one ``{Field}`` compared (``=``/``!=``) with a literal."""
    found = _FORMULA.match(formula)
    if found is None:
        raise _invalid(
            "INVALID_FILTER_BY_FORMULA",
            f"The formula for filtering records is invalid: the fake understands only {{Field}}='value' ({formula})",
        )
    name, operator, single, double, number = found.groups()
    if table.fields is not None and name not in table.fields:
        raise _invalid(
            "INVALID_FILTER_BY_FORMULA", f"The formula for filtering records is invalid: Unknown field names: {name}"
        )
    wanted: Any = single if single is not None else double if double is not None else float(number)

    def matches(fields: dict[str, Any]) -> bool:
        value = fields.get(name)
        if isinstance(wanted, float):
            equal = isinstance(value, int | float) and not isinstance(value, bool) and float(value) == wanted
        else:
            equal = ("" if value is None else str(value)) == wanted
        return equal if operator == "=" else not equal

    return matches
