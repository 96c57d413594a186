"""Airtable record nodes against the fake Airtable over real HTTP (pyairtable in a thread)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

import nodes.airtable  # noqa: F401 - registers the airtable.* nodes
import switchboard
from nodes.airtable import transport
from nodes.errors import AuthError, ProviderError, TransientError
from nodes.registry import REGISTRY
from tests.fakes.airtable import FakeAirtable, FakeTable
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import FakeOAuth
from tests.nodes.context import call_node, make_context, store_resolver

BASE = "appTestBase000001"
TOKEN = "patFake.personal-token-0"
TASKS = FakeAirtable.path(BASE, "Tasks")


@pytest.fixture
def airtable(fake_http: FakeHTTP) -> FakeAirtable:
    return FakeAirtable(fake_http, token=TOKEN)


def ctx_for(airtable: FakeAirtable) -> Any:
    return make_context(credential={"token": TOKEN, "base_url": airtable.base_url})


def tasks(airtable: FakeAirtable, count: int = 0, **extra: Any) -> FakeTable:
    rows = [{"Name": f"task {i:03d}", "Status": "Open" if i % 2 else "Done", "Priority": i % 3} for i in range(count)]
    return airtable.add_table(BASE, "Tasks", rows, fields=["Name", "Status", "Priority", "Email", "Notes"], **extra)


def stored(table: FakeTable) -> list[dict[str, Any]]:
    return [r["fields"] for r in table.records]


# -- happy paths ----------------------------------------------------------------------------


async def test_list_records_filters_sorts_projects_and_sends_the_token(airtable: FakeAirtable) -> None:
    tasks(airtable, 9)
    out = await call_node(
        "airtable.list_records",
        {
            "base": BASE,
            "table": "Tasks",
            "formula": "{Status}='Open'",
            "fields": ["Name", "Priority"],
            "sort": ["-Priority", "Name"],
            "limit": 10,
        },
        ctx_for(airtable),
    )
    assert [(r["fields"]["Priority"], r["fields"]["Name"]) for r in out["records"]] == [
        (2, "task 005"),
        (1, "task 001"),
        (1, "task 007"),
        (0, "task 003"),
    ]
    assert out["count"] == 4
    assert all(set(r["fields"]) == {"Name", "Priority"} for r in out["records"])
    assert all(r["id"].startswith("rec") and r["created_time"].endswith("Z") for r in out["records"])
    (request,) = airtable.requests()
    assert (request.method, request.path) == ("GET", TASKS)
    assert request.query == {
        "pageSize": ["10"],
        "maxRecords": ["10"],
        "filterByFormula": ["{Status}='Open'"],
        "fields[]": ["Name", "Priority"],
        "sort[0][field]": ["Priority"],
        "sort[0][direction]": ["desc"],
        "sort[1][field]": ["Name"],
        "sort[1][direction]": ["asc"],
    }
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_list_records_of_a_view_in_a_table_whose_name_needs_encoding(airtable: FakeAirtable) -> None:
    airtable.add_table(
        BASE,
        "Q3 / Roadmap",
        [{"Name": "a", "Team": "core"}, {"Name": "b", "Team": "web"}, {"Name": "c", "Team": "core"}],
        views={"Core team": {"Team": "core"}},
    )
    out = await call_node(
        "airtable.list_records", {"base": BASE, "table": "Q3 / Roadmap", "view": "Core team"}, ctx_for(airtable)
    )
    assert [r["fields"]["Name"] for r in out["records"]] == ["a", "c"]
    (request,) = airtable.requests()
    assert request.path == f"/v0/{BASE}/Q3%20%2F%20Roadmap"
    assert request.query == {"pageSize": ["100"], "maxRecords": ["100"], "view": ["Core team"]}


async def test_list_records_pages_with_offset_and_stops_at_the_limit(airtable: FakeAirtable) -> None:
    table = tasks(airtable, 250)
    out = await call_node("airtable.list_records", {"base": BASE, "table": "Tasks", "limit": 120}, ctx_for(airtable))
    assert out["count"] == 120
    assert [r["id"] for r in out["records"]] == [r["id"] for r in table.records[:120]]
    first, second = airtable.requests("GET")
    assert first.query == {"pageSize": ["100"], "maxRecords": ["120"]}
    assert second.query["offset"][0].startswith("itr")
    assert {k: v for k, v in second.query.items() if k != "offset"} == first.query
    assert len(airtable.requests()) == 2, "no page is requested past the limit"

    everything = await call_node(
        "airtable.list_records", {"base": BASE, "table": "Tasks", "limit": 10000}, ctx_for(airtable)
    )
    assert everything["count"] == 250
    assert len(airtable.requests("GET")) == 2 + 3, "pages of 100, 100 and 50"


async def test_get_record(airtable: FakeAirtable) -> None:
    table = tasks(airtable, 3)
    wanted = table.records[1]
    out = await call_node(
        "airtable.get_record", {"base": BASE, "table": "Tasks", "record_id": wanted["id"]}, ctx_for(airtable)
    )
    assert out == {
        "id": wanted["id"],
        "created_time": wanted["createdTime"],
        "fields": {"Name": "task 001", "Status": "Open", "Priority": 1},
    }
    (request,) = airtable.requests()
    assert (request.method, request.path, request.query) == ("GET", f"{TASKS}/{wanted['id']}", {})


async def test_create_records_sends_batches_of_ten(airtable: FakeAirtable) -> None:
    table = tasks(airtable)
    rows = [{"Name": f"new {i}", "Priority": i} for i in range(23)]
    out = await call_node(
        "airtable.create_records",
        {"base": BASE, "table": "Tasks", "records": rows, "typecast": True},
        ctx_for(airtable),
    )
    posts = airtable.requests("POST")
    assert [len(p.json()["records"]) for p in posts] == [10, 10, 3]
    assert all(p.path == TASKS and p.headers["authorization"] == f"Bearer {TOKEN}" for p in posts)
    assert posts[0].json()["records"][0] == {"fields": {"Name": "new 0", "Priority": 0}}
    assert {p.json()["typecast"] for p in posts} == {True}
    assert [r["fields"] for r in out["records"]] == rows
    assert [r["id"] for r in out["records"]] == [r["id"] for r in table.records]
    assert stored(table) == rows


async def test_the_fake_refuses_more_than_ten_records_like_airtable(airtable: FakeAirtable) -> None:
    tasks(airtable)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        response = await client.post(
            airtable.http.url(TASKS), json={"records": [{"fields": {"Name": str(i)}} for i in range(11)]}
        )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "INVALID_REQUEST_UNKNOWN"


async def test_update_records_merges_with_patch_and_replaces_with_put(airtable: FakeAirtable) -> None:
    table = tasks(airtable, 12)
    ids = [r["id"] for r in table.records]
    changes = [{"id": record_id, "fields": {"Status": "Blocked"}} for record_id in ids]
    out = await call_node(
        "airtable.update_records", {"base": BASE, "table": "Tasks", "records": changes}, ctx_for(airtable)
    )
    patches = airtable.requests("PATCH")
    assert [len(p.json()["records"]) for p in patches] == [10, 2]
    assert patches[0].json()["records"][0] == {"id": ids[0], "fields": {"Status": "Blocked"}}
    assert patches[0].json()["typecast"] is False
    assert out["records"][0]["fields"] == {"Name": "task 000", "Status": "Blocked", "Priority": 0}
    assert table.records[1]["fields"] == {"Name": "task 001", "Status": "Blocked", "Priority": 1}

    replaced = await call_node(
        "airtable.update_records",
        {"base": BASE, "table": "Tasks", "records": [{"id": ids[1], "fields": {"Name": "only"}}], "replace": True},
        ctx_for(airtable),
    )
    (put,) = airtable.requests("PUT")
    assert put.path == TASKS and put.json()["records"] == [{"id": ids[1], "fields": {"Name": "only"}}]
    assert replaced["records"] == [
        {"id": ids[1], "created_time": table.records[1]["createdTime"], "fields": {"Name": "only"}}
    ]
    assert table.records[1]["fields"] == {"Name": "only"}


async def test_upsert_records_matches_on_key_fields(airtable: FakeAirtable) -> None:
    table = tasks(airtable)
    table.records.append(
        {
            "id": "recExisting000001",
            "createdTime": "2024-01-01T00:00:00.000Z",
            "fields": {"Email": "a@x.io", "Name": "A"},
        }
    )
    rows = [{"Email": "a@x.io", "Name": "A2"}, {"Email": "b@x.io", "Name": "B"}, {"Email": "c@x.io", "Name": "C"}]
    out = await call_node(
        "airtable.upsert_records",
        {"base": BASE, "table": "Tasks", "records": rows, "key_fields": ["Email"], "typecast": True},
        ctx_for(airtable),
    )
    (patch,) = airtable.requests("PATCH")
    assert patch.json() == {
        "records": [{"fields": row} for row in rows],
        "typecast": True,
        "returnFieldsByFieldId": False,
        "performUpsert": {"fieldsToMergeOn": ["Email"]},
    }
    assert out["updated_ids"] == ["recExisting000001"]
    assert len(out["created_ids"]) == 2 and out["created_ids"] == [r["id"] for r in table.records[1:]]
    assert [r["fields"]["Name"] for r in out["records"]] == ["A2", "B", "C"]
    assert stored(table) == rows


async def test_delete_records_in_batches_with_query_params(airtable: FakeAirtable) -> None:
    table = tasks(airtable, 13)
    ids = [r["id"] for r in table.records[:12]]
    out = await call_node(
        "airtable.delete_records", {"base": BASE, "table": "Tasks", "record_ids": ids}, ctx_for(airtable)
    )
    deletes = airtable.requests("DELETE")
    assert [(d.path, d.query) for d in deletes] == [(TASKS, {"records[]": ids[:10]}), (TASKS, {"records[]": ids[10:]})]
    assert out == {"deleted": ids}
    assert stored(table) == [{"Name": "task 012", "Status": "Done", "Priority": 0}]


@pytest.mark.parametrize(
    ("node_type", "params", "where"),
    [
        ("airtable.list_records", {"base": "base1", "table": "Tasks"}, "base"),
        ("airtable.list_records", {"base": BASE, "table": "  "}, "table"),
        ("airtable.list_records", {"base": BASE, "table": "Tasks", "limit": 10001}, "limit"),
        ("airtable.list_records", {"base": BASE, "table": "Tasks", "sort": ["-"]}, "sort"),
        ("airtable.get_record", {"base": BASE, "table": "Tasks", "record_id": "42"}, "record_id"),
        ("airtable.delete_records", {"base": BASE, "table": "Tasks", "record_ids": ["recShort"]}, "record_ids"),
        (
            "airtable.upsert_records",
            {"base": BASE, "table": "Tasks", "records": [{"Name": "x"}], "key_fields": ["Email"]},
            "lacks key field(s) 'Email'",
        ),
        (
            "airtable.upsert_records",
            {"base": BASE, "table": "Tasks", "records": [], "key_fields": ["a", "b", "c", "d"]},
            "key_fields",
        ),
        ("airtable.create_records", {"base": BASE, "table": "Tasks", "records": [], "typo": 1}, "typo"),
    ],
)
def test_params_are_validated(node_type: str, params: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where.replace("(", r"\(").replace(")", r"\)")):
        REGISTRY.get(node_type).params_model.model_validate(params)


# -- errors -----------------------------------------------------------------------------------


async def test_airtable_messages_reach_the_node_error(airtable: FakeAirtable) -> None:
    tasks(airtable)
    ctx = ctx_for(airtable)
    with pytest.raises(ProviderError) as unknown_field:
        await call_node("airtable.create_records", {"base": BASE, "table": "Tasks", "records": [{"Nmae": "x"}]}, ctx)
    assert type(unknown_field.value) is ProviderError and unknown_field.value.status == 422
    assert str(unknown_field.value) == 'airtable 422: UNKNOWN_FIELD_NAME: Unknown field name: "Nmae"'

    with pytest.raises(ProviderError) as missing:
        await call_node("airtable.get_record", {"base": BASE, "table": "Tasks", "record_id": "recMissing0000001"}, ctx)
    assert missing.value.status == 404
    assert missing.value.message == f"NOT_FOUND (GET {TASKS}/recMissing0000001)"

    with pytest.raises(ProviderError, match="INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND") as no_table:
        await call_node("airtable.list_records", {"base": BASE, "table": "Nope"}, ctx)
    assert no_table.value.status == 403

    with pytest.raises(ProviderError, match=r"INVALID_FILTER_BY_FORMULA: .*Unknown field names: Stat"):
        await call_node("airtable.list_records", {"base": BASE, "table": "Tasks", "formula": "{Stat}='x'"}, ctx)
    assert len(airtable.requests()) == 4, "one request each: no library-level retries"


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retry_after"),
    [
        (
            429,
            {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}]},
            {},
            TransientError,
            30.0,
        ),
        (
            429,
            {"error": {"type": "TOO_MANY_REQUESTS", "message": "slow down"}},
            {"Retry-After": "7"},
            TransientError,
            7.0,
        ),
        (503, {"error": {"type": "SERVICE_UNAVAILABLE", "message": "retry shortly"}}, {}, TransientError, None),
        (
            401,
            {"error": {"type": "AUTHENTICATION_REQUIRED", "message": "Authentication required"}},
            {},
            AuthError,
            None,
        ),
    ],
)
async def test_statuses_map_onto_the_error_tree(
    airtable: FakeAirtable,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[Exception],
    retry_after: float | None,
) -> None:
    tasks(airtable, 1)
    airtable.fail_next(status, body, headers)
    with pytest.raises(error) as raised:
        await call_node("airtable.list_records", {"base": BASE, "table": "Tasks"}, ctx_for(airtable))
    assert type(raised.value) is error and raised.value.status == status  # type: ignore[attr-defined]
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after
    if isinstance(raised.value, AuthError):
        assert "reconnect credential 'test-credential'" in str(raised.value) and TOKEN not in str(raised.value)
    assert len(airtable.requests()) == 1, "pyairtable's retry strategy is off"


async def test_an_unreachable_server_is_transient() -> None:
    ctx = make_context(credential={"token": TOKEN, "base_url": "http://127.0.0.1:9"})
    with pytest.raises(TransientError, match="cannot reach Airtable"):
        await call_node("airtable.get_record", {"base": BASE, "table": "Tasks", "record_id": "recAny00000000001"}, ctx)


def test_the_client_has_explicit_timeouts_and_no_retries() -> None:
    api = transport.client(TOKEN, None)
    assert api.timeout == (10, 60)
    assert api.endpoint_url == "https://api.airtable.com"
    assert type(api.session) is requests.Session, "not pyairtable's retrying session"
    assert api.session.get_adapter("https://api.airtable.com").max_retries.total == 0  # type: ignore[attr-defined]


# -- workflows: retries are the runner's ------------------------------------------------------


def resolver_for(airtable: FakeAirtable) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        if rejected is not None:
            raise AuthError("the token was refused", provider=kind or "airtable", credential=name, status=401)
        return {"token": TOKEN, "base_url": airtable.base_url}

    return resolve


def workflow(node_type: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "airtable-test",
        "nodes": [
            {
                "id": "at",
                "type": node_type,
                "credential": "airtable-main",
                "params": params,
                "retries": 2,
                "retry_delay": 0,
            }
        ],
    }


@pytest.mark.usefixtures("prefect_server")
async def test_a_rate_limited_node_is_retried_by_the_runner(airtable: FakeAirtable) -> None:
    tasks(airtable, 3)
    airtable.fail_next(
        429, {"errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded"}]}, {"Retry-After": "0"}
    )
    result = await switchboard.arun(
        workflow("airtable.list_records", {"base": BASE, "table": "Tasks"}),
        credential_resolver=resolver_for(airtable),
        record=False,
    )
    node = result.nodes["at"]
    assert (result.status, node.status, node.attempts) == ("completed", "completed", 2)
    assert node.output["count"] == 3
    assert len(airtable.requests("GET")) == 2


@pytest.mark.usefixtures("prefect_server")
async def test_a_permanent_airtable_error_is_not_retried(airtable: FakeAirtable) -> None:
    tasks(airtable)
    result = await switchboard.arun(
        workflow("airtable.create_records", {"base": BASE, "table": "Tasks", "records": [{"Nmae": "x"}]}),
        credential_resolver=resolver_for(airtable),
        record=False,
    )
    node = result.nodes["at"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert 'Unknown field name: "Nmae"' in (node.error or "") and "422" in (node.error or "")
    assert len(airtable.requests("POST")) == 1


# -- OAuth ----------------------------------------------------------------------------------


async def test_a_refused_oauth_token_is_refreshed_once_for_five_concurrent_nodes(
    engine: AsyncEngine, fake_http: FakeHTTP
) -> None:
    oauth = FakeOAuth(fake_http)
    airtable = FakeAirtable(fake_http)
    tasks(airtable, 4)
    resolver = await store_resolver(
        engine, provider="airtable", secret=oauth.credential_secret(), base_url=airtable.base_url
    )
    outputs = await asyncio.gather(
        *(
            call_node(
                "airtable.list_records",
                {"base": BASE, "table": "Tasks", "formula": "{Status}='Open'"},
                make_context(resolver=resolver, node_id=f"n{i}"),
            )
            for i in range(5)
        )
    )
    assert [o["count"] for o in outputs] == [2] * 5
    assert len(oauth.token_requests()) == 1
    sent = [r.headers["authorization"] for r in airtable.requests()]
    assert set(sent) == {"Bearer stale-token", "Bearer fresh-token-1"}
    assert sent.count("Bearer fresh-token-1") == 5


async def test_a_revoked_grant_says_which_credential_to_reconnect(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    airtable = FakeAirtable(fake_http)
    tasks(airtable, 1)
    oauth.revoke()
    resolver = await store_resolver(
        engine, provider="airtable", secret=oauth.credential_secret(), base_url=airtable.base_url
    )
    with pytest.raises(AuthError, match=r"reconnect credential 'test-credential'") as caught:
        await call_node("airtable.list_records", {"base": BASE, "table": "Tasks"}, make_context(resolver=resolver))
    message = str(caught.value)
    assert all(secret not in message for secret in ("refresh-0", "client-secret-0", "stale-token", "fresh-token"))
    assert len(oauth.token_requests()) == 1
    assert [r.headers["authorization"] for r in airtable.requests()] == ["Bearer stale-token"]
