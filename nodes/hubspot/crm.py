"""HubSpot CRM nodes: search contacts, upsert a contact by email, create a deal, add a note."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.hubspot import transport
from nodes.params import Params
from nodes.registry import node

#: Most contacts one search node returns (HubSpot's search stops at 10,000 anyway).
MAX_SEARCH_RESULTS = 1000
#: HubSpot accepts at most 6 filters in one filter group.
MAX_FILTERS = 6
#: HubSpot's limit on a note body.
MAX_NOTE_CHARS = 65536

PropertyValue = str | int | float | bool | None
ID_FIELD_PATTERN = r"^\d+$"


def _properties(values: dict[str, PropertyValue]) -> dict[str, str]:
    return {name: transport.property_value(value) for name, value in values.items()}


class Contact(BaseModel):
    id: str = Field(description="The contact's record id.")
    properties: dict[str, str | None] = Field(description="Property values by internal name (null when unset).")
    created_at: str | None = Field(description="When the contact was created (ISO 8601).")
    updated_at: str | None = Field(description="When the contact was last modified (ISO 8601).")


def _contact(raw: dict[str, Any]) -> Contact:
    return Contact(
        id=str(raw["id"]),
        properties=raw.get("properties") or {},
        created_at=raw.get("createdAt"),
        updated_at=raw.get("updatedAt"),
    )


class SearchContactsParams(Params):
    query: str | None = Field(
        default=None,
        min_length=1,
        description="Free text HubSpot matches against the contacts' default searchable properties "
        "(name, email, phone, company).",
    )
    filters: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_FILTERS,
        description=f"Property name -> exact value (HubSpot's EQ); every one must match. At most {MAX_FILTERS}.",
    )
    properties: list[str] = Field(
        default_factory=list,
        description="Properties to return (default: HubSpot's email, firstname, lastname, createdate, "
        "lastmodifieddate, hs_object_id).",
    )
    limit: int = Field(
        default=20,
        ge=1,
        le=MAX_SEARCH_RESULTS,
        description=f"Most contacts to return (1-{MAX_SEARCH_RESULTS}); pages of 100 are fetched as needed.",
    )


class SearchContactsOutput(BaseModel):
    contacts: list[Contact] = Field(description="The matching contacts, at most `limit`.")
    total: int = Field(description="How many contacts match in all (may exceed `limit`).")


@node("hubspot.search_contacts", credential="hubspot")
async def search_contacts(ctx: NodeContext, params: SearchContactsParams) -> SearchContactsOutput:
    """Search HubSpot contacts by text and exact property values."""
    body: dict[str, Any] = {}
    if params.query:
        body["query"] = params.query
    if params.filters:
        filters = [{"propertyName": k, "operator": "EQ", "value": v} for k, v in params.filters.items()]
        body["filterGroups"] = [{"filters": filters}]
    if params.properties:
        body["properties"] = params.properties
    found, total = await transport.search(ctx, "contacts", body, params.limit)
    return SearchContactsOutput(contacts=[_contact(raw) for raw in found], total=total)


class UpsertContactParams(Params):
    email: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$", description="The contact's email: the contact to update, or the new one's."
    )
    properties: dict[str, PropertyValue] = Field(
        default_factory=dict,
        description="Property values to set, by internal name (e.g. firstname, lastname, phone); "
        "null clears a value. The email is set too unless given here.",
    )


class UpsertContactOutput(BaseModel):
    id: str = Field(description="The contact's record id.")
    created: bool = Field(description="True if the contact was created, false if an existing one was updated.")
    properties: dict[str, str | None] = Field(description="The contact's property values HubSpot returned.")


@node("hubspot.upsert_contact", credential="hubspot")
async def upsert_contact(ctx: NodeContext, params: UpsertContactParams) -> UpsertContactOutput:
    """Create a HubSpot contact, or update the one with that email."""
    properties = {"email": params.email, **_properties(params.properties)}
    data = await transport.request(
        ctx,
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        body={"inputs": [{"idProperty": "email", "id": params.email, "properties": properties}]},
    )
    results = data.get("results") or []
    if not results:  # 207 multi-status: the one input failed
        errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
        message = transport.message_of(errors[0]) if errors else None
        raise ProviderError(message or "HubSpot upserted no contact", provider=transport.PROVIDER)
    result = results[0]
    return UpsertContactOutput(
        id=str(result["id"]), created=bool(result.get("new")), properties=result.get("properties") or {}
    )


class CreateDealParams(Params):
    name: str = Field(min_length=1, description="The deal name (`dealname`).")
    stage: str = Field(
        min_length=1, description="The deal stage's internal id (`dealstage`), e.g. appointmentscheduled."
    )
    pipeline: str = Field(default="default", min_length=1, description="The pipeline's internal id.")
    amount: float | None = Field(default=None, description="The deal amount.")
    close_date: datetime | date | None = Field(
        default=None, description="The expected close date or time (ISO 8601; a date means midnight UTC)."
    )
    contact_id: str | None = Field(
        default=None, pattern=ID_FIELD_PATTERN, description="A contact's record id to associate the deal with."
    )
    properties: dict[str, PropertyValue] = Field(
        default_factory=dict, description="More deal properties by internal name (the fields above win)."
    )


class DealOutput(BaseModel):
    id: str = Field(description="The new deal's record id.")
    properties: dict[str, str | None] = Field(description="The deal's property values HubSpot returned.")


@node("hubspot.create_deal", credential="hubspot")
async def create_deal(ctx: NodeContext, params: CreateDealParams) -> DealOutput:
    """Create a HubSpot deal, optionally associated with a contact."""
    properties = {
        **_properties(params.properties),
        "dealname": params.name,
        "dealstage": params.stage,
        "pipeline": params.pipeline,
    }
    if params.amount is not None:
        properties["amount"] = transport.property_value(params.amount)
    if params.close_date is not None:
        properties["closedate"] = transport.timestamp(params.close_date)
    body: dict[str, Any] = {"properties": properties}
    if params.contact_id:
        body["associations"] = [_association(params.contact_id, transport.DEAL_TO_CONTACT)]
    data = await transport.request(ctx, "POST", "/crm/v3/objects/deals", body=body)
    return DealOutput(id=str(data["id"]), properties=data.get("properties") or {})


def _association(to_id: str, type_id: int) -> dict[str, Any]:
    return {"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}


class AddNoteParams(Params):
    body: str = Field(min_length=1, max_length=MAX_NOTE_CHARS, description="The note text (HTML allowed).")
    contact_id: str | None = Field(
        default=None, pattern=ID_FIELD_PATTERN, description="A contact's record id to attach the note to."
    )
    deal_id: str | None = Field(
        default=None, pattern=ID_FIELD_PATTERN, description="A deal's record id to attach the note to."
    )
    timestamp: datetime | None = Field(
        default=None, description="Where the note sits on the record timeline (ISO 8601; default: now)."
    )

    @model_validator(mode="after")
    def _has_target(self) -> AddNoteParams:
        if not self.contact_id and not self.deal_id:
            raise ValueError("give `contact_id`, `deal_id` or both: a note is attached to a record")
        return self


class NoteOutput(BaseModel):
    id: str = Field(description="The new note's record id.")


@node("hubspot.add_note", credential="hubspot")
async def add_note(ctx: NodeContext, params: AddNoteParams) -> NoteOutput:
    """Add a note to a HubSpot contact and/or deal timeline."""
    associations = []
    if params.contact_id:
        associations.append(_association(params.contact_id, transport.NOTE_TO_CONTACT))
    if params.deal_id:
        associations.append(_association(params.deal_id, transport.NOTE_TO_DEAL))
    properties = {
        "hs_note_body": params.body,
        "hs_timestamp": transport.timestamp(params.timestamp or datetime.now(UTC)),
    }
    data = await transport.request(
        ctx, "POST", "/crm/v3/objects/notes", body={"properties": properties, "associations": associations}
    )
    return NoteOutput(id=str(data["id"]))
