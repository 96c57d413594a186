"""nodes.rest.RestProvider over real HTTP to a local fake: URLs, pooled clients, hostile bodies."""

from __future__ import annotations

from nodes.context import NodeContext
from nodes.rest import RestProvider
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import make_context

TOKEN = "rest-token"


def provider_for(fake: FakeHTTP) -> tuple[RestProvider, NodeContext]:
    provider = RestProvider("fakeapi", fake.base_url)
    return provider, make_context(credential={"token": TOKEN, "base_url": fake.base_url})


async def test_a_path_with_a_query_string_keeps_it_when_params_are_given(fake_http: FakeHTTP) -> None:
    """A pagination link (path and query from the provider) plus the caller's own parameters."""
    fake_http.script("GET", "/items", Reply(200, {"items": []}))
    provider, ctx = provider_for(fake_http)
    await provider.request(ctx, "GET", "/items?cursor=abc%3D&limit=5", params={"limit": 10, "fields": "id"})
    assert fake_http.calls("/items")[0].query == {"cursor": ["abc="], "limit": ["10"], "fields": ["id"]}
