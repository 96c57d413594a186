"""HubSpot CRM nodes against the fake HubSpot over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

import nodes.hubspot.crm  # noqa: F401 - registers the hubspot.* nodes
import switchboard
from nodes.context import NodeContext
from nodes.errors import AuthError, ProviderError, TransientError
from nodes.hubspot import transport
from tests.fakes.http import FakeHTTP
from tests.fakes.hubspot import DEALS_PATH, NOTES_PATH, SEARCH_PATH, UPSERT_PATH, FakeHubSpot, rate_limited
from tests.fakes.oauth import FakeOAuth
from tests.nodes.context import call_node, make_context, store_resolver

TOKEN = "pat-na1-test-token"


@pytest.fixture
def hubspot(fake_http: FakeHTTP) -> FakeHubSpot:
    """A fake HubSpot that accepts only the private-app token ``TOKEN``."""
    return FakeHubSpot(fake_http, token=TOKEN)


def ctx_for(hubspot: FakeHubSpot) -> NodeContext:
    return make_context(credential={"token": TOKEN, "base_url": hubspot.base_url})


def resolver_for(hubspot: FakeHubSpot) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        assert (name, kind) == ("hubspot-test", "hubspot")
        return {"token": TOKEN, "base_url": hubspot.base_url}

    return resolve


def workflow(node_type: str, params: dict[str, Any], **options: Any) -> dict[str, Any]:
    node = {"id": "crm", "type": node_type, "credential": "hubspot-test", "params": params, **options}
    return {"name": "hubspot-test", "nodes": [node]}


# -- happy paths ---------------------------------------------------------------------------


async def test_search_contacts_sends_query_filters_and_properties(hubspot: FakeHubSpot) -> None:
    ada = hubspot.add_contact(email="ada@acme.io", firstname="Ada", lastname="Lovelace", lifecyclestage="customer")
    hubspot.add_contact(email="adam@acme.io", firstname="Adam", lastname="Smith", lifecyclestage="lead")
    hubspot.add_contact(email="grace@navy.mil", firstname="Grace", lastname="Hopper", lifecyclestage="customer")

    out = await call_node(
        "hubspot.search_contacts",
        {"query": "ada", "filters": {"lifecyclestage": "customer"}, "properties": ["email", "firstname"]},
        ctx_for(hubspot),
    )

    assert out["total"] == 1
    [contact] = out["contacts"]
    assert contact["id"] == ada
    assert contact["properties"]["email"] == "ada@acme.io"
    assert contact["properties"]["firstname"] == "Ada"
    assert "lastname" not in contact["properties"]
    assert contact["created_at"] and contact["updated_at"]
    [request] = hubspot.requests(SEARCH_PATH)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {
        "query": "ada",
        "filterGroups": [{"filters": [{"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}]}],
        "properties": ["email", "firstname"],
        "limit": 20,
    }


async def test_search_contacts_pages_with_after_until_the_limit(hubspot: FakeHubSpot) -> None:
    for i in range(150):
        hubspot.add_contact(email=f"user{i}@acme.io", firstname=f"User{i}", lifecyclestage="lead")
    for i in range(5):
        hubspot.add_contact(email=f"other{i}@acme.io", lifecyclestage="customer")

    out = await call_node(
        "hubspot.search_contacts", {"filters": {"lifecyclestage": "lead"}, "limit": 120}, ctx_for(hubspot)
    )

    assert (len(out["contacts"]), out["total"]) == (120, 150)
    assert [c["properties"]["email"] for c in out["contacts"]] == [f"user{i}@acme.io" for i in range(120)]
    first, second = hubspot.requests(SEARCH_PATH)
    assert (first.json()["limit"], "after" in first.json()) == (100, False)
    assert (second.json()["limit"], second.json()["after"]) == (20, "100")


async def test_search_contacts_stops_when_hubspot_has_no_next_page(hubspot: FakeHubSpot) -> None:
    for i in range(3):
        hubspot.add_contact(email=f"u{i}@acme.io")
    out = await call_node("hubspot.search_contacts", {"limit": 500}, ctx_for(hubspot))
    assert (len(out["contacts"]), out["total"]) == (3, 3)
    assert set(out["contacts"][0]["properties"]) >= {"email", "firstname", "lastname", "hs_object_id"}
    assert [r.json()["limit"] for r in hubspot.requests(SEARCH_PATH)] == [100]


async def test_upsert_contact_creates_then_updates_by_email(hubspot: FakeHubSpot) -> None:
    ctx = ctx_for(hubspot)
    created = await call_node(
        "hubspot.upsert_contact", {"email": "ada@acme.io", "properties": {"firstname": "Ada"}}, ctx
    )
    updated = await call_node(
        "hubspot.upsert_contact",
        {"email": "ada@acme.io", "properties": {"lastname": "Lovelace", "phone": 5551234}},
        ctx,
    )

    assert created["created"] is True and updated["created"] is False
    assert created["id"] == updated["id"]
    assert created["properties"]["firstname"] == "Ada"
    assert (updated["properties"]["lastname"], updated["properties"]["phone"]) == ("Lovelace", "5551234")
    [contact] = hubspot.contacts()
    assert contact["id"] == created["id"]
    assert {k: contact["properties"][k] for k in ("email", "firstname", "lastname")} == {
        "email": "ada@acme.io",
        "firstname": "Ada",
        "lastname": "Lovelace",
    }
    first, second = hubspot.requests(UPSERT_PATH)
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.json() == {
        "inputs": [
            {"idProperty": "email", "id": "ada@acme.io", "properties": {"email": "ada@acme.io", "firstname": "Ada"}}
        ]
    }
    assert second.json()["inputs"][0]["properties"] == {
        "email": "ada@acme.io",
        "lastname": "Lovelace",
        "phone": "5551234",
    }


async def test_create_deal_associated_with_a_contact(hubspot: FakeHubSpot) -> None:
    contact = hubspot.add_contact(email="ada@acme.io")

    out = await call_node(
        "hubspot.create_deal",
        {
            "name": "Acme renewal",
            "stage": "appointmentscheduled",
            "amount": 1500.5,
            "close_date": "2025-06-30",
            "contact_id": contact,
            "properties": {"dealtype": "existingbusiness", "dealname": "ignored: the name param wins"},
        },
        ctx_for(hubspot),
    )

    [request] = hubspot.requests(DEALS_PATH)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {
        "properties": {
            "dealtype": "existingbusiness",
            "dealname": "Acme renewal",
            "dealstage": "appointmentscheduled",
            "pipeline": "default",
            "amount": "1500.5",
            "closedate": "2025-06-30T00:00:00.000Z",
        },
        "associations": [
            {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}
        ],
    }
    assert out["id"] in hubspot.objects["deals"]
    assert out["properties"]["dealname"] == "Acme renewal"
    assert out["properties"]["pipeline"] == "default"
    assert hubspot.associated("deals", out["id"]) == [("contacts", contact, 3)]


async def test_add_note_to_a_contact_and_a_deal(hubspot: FakeHubSpot) -> None:
    contact = hubspot.add_contact(email="ada@acme.io")
    deal = (await call_node("hubspot.create_deal", {"name": "D", "stage": "closedwon"}, ctx_for(hubspot)))["id"]

    out = await call_node(
        "hubspot.add_note",
        {
            "body": "Called: <b>renewing</b>",
            "contact_id": contact,
            "deal_id": deal,
            "timestamp": "2025-01-15T10:30:00+01:00",
        },
        ctx_for(hubspot),
    )

    [request] = hubspot.requests(NOTES_PATH)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {
        "properties": {"hs_note_body": "Called: <b>renewing</b>", "hs_timestamp": "2025-01-15T09:30:00.000Z"},
        "associations": [
            {"to": {"id": contact}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]},
            {"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]},
        ],
    }
    assert hubspot.objects["notes"][out["id"]]["properties"]["hs_note_body"] == "Called: <b>renewing</b>"
    assert hubspot.associated("notes", out["id"]) == [("contacts", contact, 202), ("deals", deal, 214)]


async def test_add_note_defaults_its_timestamp_to_now(hubspot: FakeHubSpot) -> None:
    deal = (await call_node("hubspot.create_deal", {"name": "D", "stage": "closedwon"}, ctx_for(hubspot)))["id"]
    before = datetime.now(UTC)
    out = await call_node("hubspot.add_note", {"body": "hello", "deal_id": deal}, ctx_for(hubspot))
    stamp = hubspot.requests(NOTES_PATH)[0].json()["properties"]["hs_timestamp"]
    assert stamp.endswith("Z")
    assert (datetime.fromisoformat(stamp) - before).total_seconds() > -1
    assert hubspot.associated("notes", out["id"]) == [("deals", deal, 214)]


def test_add_note_needs_a_contact_or_a_deal() -> None:
    from nodes.registry import REGISTRY

    with pytest.raises(ValidationError, match=r"contact_id.*deal_id"):
        REGISTRY.get("hubspot.add_note").params_model.model_validate({"body": "orphan"})


# -- permanent and transient failures -----------------------------------------------------------


async def test_an_invalid_association_is_a_provider_error_with_hubspots_message(hubspot: FakeHubSpot) -> None:
    with pytest.raises(ProviderError) as caught:
        await call_node("hubspot.create_deal", {"name": "D", "stage": "s", "contact_id": "999"}, ctx_for(hubspot))
    assert not isinstance(caught.value, TransientError)
    assert caught.value.status == 400
    assert "One or more associations are invalid" in str(caught.value)
    assert "CONTACT=999 is not valid" in str(caught.value)
    assert hubspot.objects["deals"] == {}


async def test_an_unknown_property_names_the_property(hubspot: FakeHubSpot) -> None:
    with pytest.raises(ProviderError) as caught:
        await call_node(
            "hubspot.upsert_contact",
            {"email": "ada@acme.io", "properties": {"favourite_colour": "teal"}},
            ctx_for(hubspot),
        )
    assert caught.value.status == 400
    assert (
        str(caught.value) == 'hubspot 400: Property values were not valid: Property "favourite_colour" does not exist'
    )
    assert hubspot.contacts() == []


async def test_a_rate_limit_is_transient_with_retry_after(hubspot: FakeHubSpot) -> None:
    hubspot.fail_next("POST", SEARCH_PATH, rate_limited(retry_after="7"))
    with pytest.raises(TransientError) as caught:
        await call_node("hubspot.search_contacts", {}, ctx_for(hubspot))
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    assert "ten_secondly_rolling limit" in str(caught.value)


async def test_the_fake_answers_unknown_ids_with_404(hubspot: FakeHubSpot) -> None:
    contact = hubspot.add_contact(email="ada@acme.io")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=hubspot.base_url, headers=headers) as client:
        found = await client.get(f"/crm/v3/objects/contacts/{contact}")
        missing = await client.get("/crm/v3/objects/contacts/424242")
    assert found.json()["properties"]["email"] == "ada@acme.io"
    assert missing.status_code == 404
    assert transport.message_of(missing.json()) == "resource not found"
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


@pytest.mark.usefixtures("prefect_server")
async def test_a_429_is_retried_in_a_workflow(hubspot: FakeHubSpot) -> None:
    hubspot.fail_next("POST", DEALS_PATH, rate_limited())
    result = await switchboard.arun(
        workflow("hubspot.create_deal", {"name": "Retry me", "stage": "s"}, retries=2, retry_delay=0),
        credential_resolver=resolver_for(hubspot),
        record=False,
    )
    node = result.nodes["crm"]
    assert (result.status, node.status, node.attempts) == ("completed", "completed", 2)
    assert len(hubspot.requests(DEALS_PATH)) == 2
    [deal] = hubspot.objects["deals"].values()
    assert node.output == {"id": deal["id"], "properties": deal["properties"]}


@pytest.mark.usefixtures("prefect_server")
async def test_a_permanent_error_is_not_retried_in_a_workflow(hubspot: FakeHubSpot) -> None:
    result = await switchboard.arun(
        workflow("hubspot.add_note", {"body": "x", "contact_id": "31337"}, retries=3, retry_delay=0),
        credential_resolver=resolver_for(hubspot),
        record=False,
    )
    node = result.nodes["crm"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert "400" in (node.error or "") and "CONTACT=31337 is not valid" in (node.error or "")
    assert len(hubspot.requests(NOTES_PATH)) == 1


# -- OAuth --------------------------------------------------------------------------------------


async def test_an_expired_oauth_token_is_refreshed_once_for_five_nodes(
    engine: AsyncEngine, fake_http: FakeHTTP
) -> None:
    oauth = FakeOAuth(fake_http)
    hubspot = FakeHubSpot(fake_http)
    hubspot.add_contact(email="ada@acme.io", firstname="Ada")
    resolver = await store_resolver(
        engine, provider="hubspot", secret=oauth.credential_secret(), base_url=hubspot.base_url
    )

    outputs = await asyncio.gather(
        *(
            call_node("hubspot.search_contacts", {"query": "ada"}, make_context(resolver=resolver, node_id=f"n{i}"))
            for i in range(5)
        )
    )

    assert [o["contacts"][0]["properties"]["firstname"] for o in outputs] == ["Ada"] * 5
    assert len(oauth.token_requests()) == 1
    searches = hubspot.requests(SEARCH_PATH)
    assert {r.headers["authorization"] for r in searches} == {"Bearer stale-token", "Bearer fresh-token-1"}
    assert sum(r.headers["authorization"] == "Bearer fresh-token-1" for r in searches) == 5


async def test_a_revoked_grant_says_which_credential_to_reconnect(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    hubspot = FakeHubSpot(fake_http)
    oauth.revoke()
    resolver = await store_resolver(
        engine, provider="hubspot", secret=oauth.credential_secret(), base_url=hubspot.base_url
    )

    with pytest.raises(AuthError, match=r"reconnect credential 'test-credential'") as caught:
        await call_node("hubspot.upsert_contact", {"email": "ada@acme.io"}, make_context(resolver=resolver))

    message = str(caught.value)
    for secret in ("refresh-0", "client-secret-0", "stale-token", "fresh-token"):
        assert secret not in message
    assert len(oauth.token_requests()) == 1
    assert [r.headers["authorization"] for r in hubspot.requests(UPSERT_PATH)] == ["Bearer stale-token"]
    assert hubspot.contacts() == []


async def test_a_private_app_token_refused_is_not_refreshed(hubspot: FakeHubSpot) -> None:
    ctx = make_context(credential={"token": "pat-na1-revoked", "base_url": hubspot.base_url})
    with pytest.raises(AuthError, match="reconnect credential 'test-credential'") as caught:
        await call_node("hubspot.search_contacts", {}, ctx)
    assert "pat-na1-revoked" not in str(caught.value)
    assert len(hubspot.requests(SEARCH_PATH)) == 1
