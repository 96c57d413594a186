"""Provider responses are hostile too: a body nested 100k deep must fail a node with a clear
node error, never a RecursionError (http.request, RestProvider families, the SDK families)."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.errors import NodeError, ProviderError
from nodes.providers import Provider
from nodes.rest import RestProvider
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, guarded_client, make_context

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_IN_MESSAGE = b'{"message": "Property values were not valid: ' + b"[" * 100_000 + b'"}'
BASE = "app" + "A" * 14
DEAL = {"name": "Deal", "stage": "appointmentscheduled"}


def deep(status: int = 200) -> Reply:
    return Reply(status, DEEP, content_type="application/json")


def credential(fake: FakeHTTP) -> dict[str, Any]:
    return {"token": "t", "base_url": fake.base_url}


async def test_http_request_fails_clearly_on_a_deep_json_body(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/deep", deep())
    async with guarded_client("127.0.0.1") as http:
        with pytest.raises(ProviderError, match="nests deeper than 64 levels"):
            await call_node("http.request", {"url": fake_http.url("/deep")}, make_context(http))


async def test_http_request_keeps_the_text_of_a_malformed_json_body(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/broken", Reply(200, b"{oops", content_type="application/json"))
    async with guarded_client("127.0.0.1") as http:
        out = await call_node("http.request", {"url": fake_http.url("/broken")}, make_context(http))
    assert (out["json"], out["text"]) == (None, "{oops")


async def test_rest_provider_error_bodies_are_parsed_within_bounds(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/deep", deep(400))
    provider = RestProvider(Provider("fakeapi", "Fake API", fake_http.base_url))
    with pytest.raises(ProviderError) as raised:
        await provider.request(make_context(credential=credential(fake_http)), "GET", "/deep")
    assert raised.value.status == 400 and "[[[[" in str(raised.value)


async def test_rest_provider_json_of_refuses_a_deep_body(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/deep", deep())
    provider = RestProvider(Provider("fakeapi", "Fake API", fake_http.base_url))
    response = await provider.request(make_context(credential=credential(fake_http)), "GET", "/deep")
    with pytest.raises(ProviderError, match="fakeapi's response nests deeper than 64 levels"):
        provider.json_of(response)


@pytest.mark.parametrize(
    ("node_type", "params", "method", "path", "reply"),
    [
        ("hubspot.create_deal", DEAL, "POST", "/crm/v3/objects/deals", deep()),
        ("hubspot.create_deal", DEAL, "POST", "/crm/v3/objects/deals", Reply(400, DEEP_IN_MESSAGE)),
        ("gdrive.list_files", {}, "GET", "/drive/v3/files", deep()),
        ("gdrive.list_files", {}, "GET", "/drive/v3/files", deep(403)),
        ("airtable.list_records", {"base": BASE, "table": "t"}, "GET", f"/v0/{BASE}/t", deep()),
        ("airtable.list_records", {"base": BASE, "table": "t"}, "GET", f"/v0/{BASE}/t", deep(422)),
        ("github.get_issue", {"repo": "a/b", "number": 1}, "GET", "/repos/a/b/issues/1/comments", deep()),
    ],
    ids=["hubspot-ok", "hubspot-error-message", "gdrive-ok", "gdrive-403", "airtable-ok", "airtable-422", "github"],
)
async def test_provider_nodes_fail_clearly_on_a_deep_json_body(
    fake_http: FakeHTTP, node_type: str, params: dict[str, Any], method: str, path: str, reply: Reply
) -> None:
    fake_http.script(method, path, reply)
    with pytest.raises(NodeError) as raised:
        await call_node(node_type, params, make_context(credential=credential(fake_http)))
    assert isinstance(raised.value, ProviderError), repr(raised.value)
    assert fake_http.calls(path), "the provider was asked"
