"""Airtable record nodes: list (paged, bounded), get, create, update, upsert, delete.

Writes go out in batches of 10 records, Airtable's limit per request; a failure part-way
leaves the earlier batches applied (Airtable has no transactions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator

from nodes.airtable import transport
from nodes.context import NodeContext
from nodes.params import Params
from nodes.registry import node

if TYPE_CHECKING:
    from pyairtable import Api
    from pyairtable.api.types import RecordDict

RECORD_ID_PATTERN = r"^rec[A-Za-z0-9]{14}$"
RecordId = Annotated[str, Field(pattern=RECORD_ID_PATTERN)]
MAX_LIST_LIMIT = 10_000


class TableRef(Params):
    base: str = Field(
        pattern=r"^app[A-Za-z0-9]{14}$",
        description="The base id: `app` and 14 letters or digits (in the base's URL and API docs).",
    )
    table: str = Field(min_length=1, pattern=r"\S", description="The table's name or id (`tbl...`).")


class AirtableRecord(BaseModel):
    id: str = Field(description="The record id (`rec...`).")
    created_time: str = Field(description="When the record was created (ISO 8601, UTC).")
    fields: dict[str, Any] = Field(description="Field name -> value; Airtable leaves out empty fields.")


def _record(raw: RecordDict) -> AirtableRecord:
    return AirtableRecord(id=raw["id"], created_time=raw["createdTime"], fields=dict(raw["fields"]))


class RecordsOutput(BaseModel):
    records: list[AirtableRecord] = Field(description="The records Airtable returned, in request order.")


# -- list ---------------------------------------------------------------------------------


class ListParams(TableRef):
    formula: str | None = Field(
        default=None, description="Only records for which this Airtable formula is true, e.g. `{Status}='Done'`."
    )
    view: str | None = Field(
        default=None, description="Only records in this view (name or id), in the view's order unless `sort`."
    )
    fields: list[str] | None = Field(default=None, description="Return only these fields (default: all).")
    sort: list[str] | None = Field(
        default=None, description="Sort by these fields in turn; prefix a name with `-` for descending."
    )
    limit: int = Field(default=100, ge=1, le=MAX_LIST_LIMIT, description="Most records to return (at most 10000).")

    @field_validator("fields", "sort")
    @classmethod
    def _names(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            if not name.lstrip("-").strip():
                raise ValueError("field names must not be empty")
        return names


class ListOutput(RecordsOutput):
    count: int = Field(description="How many records were returned.")


@node("airtable.list_records", credential="airtable")
async def list_records(ctx: NodeContext, params: ListParams) -> ListOutput:
    """List records of an Airtable table, optionally filtered by a formula or view, sorted and limited."""
    options: dict[str, Any] = {}
    if params.formula:
        options["formula"] = params.formula
    if params.view:
        options["view"] = params.view
    if params.fields:
        options["fields"] = params.fields
    if params.sort:
        options["sort"] = params.sort

    def fetch(api: Api) -> list[RecordDict]:
        table = api.table(params.base, params.table)
        return list(transport.iterate_records(table, limit=params.limit, **options))

    records = [_record(raw) for raw in await transport.request(ctx, fetch)]
    return ListOutput(records=records, count=len(records))


# -- get ----------------------------------------------------------------------------------


class GetParams(TableRef):
    record_id: str = Field(pattern=RECORD_ID_PATTERN, description="The record id (`rec...`).")


@node("airtable.get_record", credential="airtable")
async def get_record(ctx: NodeContext, params: GetParams) -> AirtableRecord:
    """Fetch one Airtable record by its id."""
    raw = await transport.request(ctx, lambda api: api.table(params.base, params.table).get(params.record_id))
    return _record(raw)


# -- create -------------------------------------------------------------------------------


class CreateParams(TableRef):
    records: list[dict[str, Any]] = Field(
        description="The new records, each a map of field name -> value (sent 10 per request)."
    )
    typecast: bool = Field(
        default=False, description="Let Airtable convert values (e.g. text to a new select option or a date)."
    )


@node("airtable.create_records", credential="airtable")
async def create_records(ctx: NodeContext, params: CreateParams) -> RecordsOutput:
    """Create records in an Airtable table (in batches of 10)."""
    created = await transport.request(
        ctx,
        lambda api: api.table(params.base, params.table).batch_create(params.records, typecast=params.typecast),
    )
    return RecordsOutput(records=[_record(raw) for raw in created])


# -- update -------------------------------------------------------------------------------


class RecordUpdate(Params):
    id: str = Field(pattern=RECORD_ID_PATTERN, description="The record id (`rec...`).")
    fields: dict[str, Any] = Field(description="Field name -> new value.")


class UpdateParams(TableRef):
    records: list[RecordUpdate] = Field(description="The records to change: `{id, fields}` each (sent 10 per request).")
    replace: bool = Field(
        default=False, description="Replace every field (PUT: fields not given are cleared) instead of merging."
    )
    typecast: bool = Field(default=False, description="Let Airtable convert values to the fields' types.")


@node("airtable.update_records", credential="airtable")
async def update_records(ctx: NodeContext, params: UpdateParams) -> RecordsOutput:
    """Update Airtable records by id: merge the given fields, or replace them all."""
    updates: list[Any] = [{"id": r.id, "fields": r.fields} for r in params.records]
    updated = await transport.request(
        ctx,
        lambda api: api.table(params.base, params.table).batch_update(
            updates, replace=params.replace, typecast=params.typecast
        ),
    )
    return RecordsOutput(records=[_record(raw) for raw in updated])


# -- upsert -------------------------------------------------------------------------------


class UpsertParams(TableRef):
    records: list[dict[str, Any]] = Field(
        description="Records as maps of field name -> value; each must contain every key field."
    )
    key_fields: list[str] = Field(
        min_length=1,
        max_length=3,
        description="1 to 3 fields that identify a record: a match is updated, no match creates one.",
    )
    typecast: bool = Field(default=False, description="Let Airtable convert values to the fields' types.")

    @model_validator(mode="after")
    def _keys_present(self) -> UpsertParams:
        for index, record in enumerate(self.records):
            missing = [name for name in self.key_fields if name not in record]
            if missing:
                raise ValueError(f"record {index} lacks key field(s) {', '.join(map(repr, missing))}")
        return self


class UpsertOutput(RecordsOutput):
    created_ids: list[str] = Field(description="Ids of the records that were created.")
    updated_ids: list[str] = Field(description="Ids of the existing records that were updated.")


@node("airtable.upsert_records", credential="airtable")
async def upsert_records(ctx: NodeContext, params: UpsertParams) -> UpsertOutput:
    """Create or update Airtable records matched on key fields (Airtable's upsert)."""
    records: list[dict[str, Any]] = [{"fields": fields} for fields in params.records]
    result = await transport.request(
        ctx,
        lambda api: api.table(params.base, params.table).batch_upsert(
            records, key_fields=params.key_fields, typecast=params.typecast
        ),
    )
    return UpsertOutput(
        records=[_record(raw) for raw in result["records"]],
        created_ids=list(result["createdRecords"]),
        updated_ids=list(result["updatedRecords"]),
    )


# -- delete -------------------------------------------------------------------------------


class DeleteParams(TableRef):
    record_ids: list[RecordId] = Field(description="Ids of the records to delete (`rec...`; sent 10 per request).")


class DeleteOutput(BaseModel):
    deleted: list[str] = Field(description="Ids of the records Airtable deleted.")


@node("airtable.delete_records", credential="airtable")
async def delete_records(ctx: NodeContext, params: DeleteParams) -> DeleteOutput:
    """Delete Airtable records by id (in batches of 10)."""
    results = await transport.request(
        ctx, lambda api: api.table(params.base, params.table).batch_delete(params.record_ids)
    )
    return DeleteOutput(deleted=[r["id"] for r in results if r.get("deleted")])
