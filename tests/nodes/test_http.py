"""http.request over real HTTP to a local fake, and the SSRF guard."""

from __future__ import annotations

import ipaddress

import pytest

import switchboard
from nodes.errors import NodeConfigError, ProviderError, TransientError
from nodes.http_guard import AllowList, is_public
from tests.fakes.http import FakeHTTP, Recorded, Reply
from tests.nodes.context import call_node, guarded_client, make_context


async def test_get_returns_status_headers_json_and_text(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/items", Reply(200, {"items": [1, 2]}, {"X-Total": "2"}))
    async with guarded_client("127.0.0.1") as http:
        out = await call_node(
            "http.request", {"url": fake_http.url("/items"), "query": {"page": 2}}, make_context(http)
        )
    assert out["status"] == 200
    assert out["json"] == {"items": [1, 2]}
    assert out["headers"]["x-total"] == "2"
    assert fake_http.calls("/items")[0].query == {"page": ["2"]}


async def test_post_sends_json_and_headers(fake_http: FakeHTTP) -> None:
    fake_http.script("POST", "/hook", Reply(201, "created"))
    params = {"method": "POST", "url": fake_http.url("/hook"), "json": {"a": 1}, "headers": {"X-Key": "k"}}
    async with guarded_client("127.0.0.1") as http:
        out = await call_node("http.request", params, make_context(http))
    assert (out["status"], out["text"], out["json"]) == (201, "created", None)
    sent = fake_http.calls("/hook")[0]
    assert sent.json() == {"a": 1} and sent.headers["x-key"] == "k"


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (Reply(429, "slow", {"Retry-After": "7"}), TransientError, 7.0),
        (Reply(503, "down"), TransientError, None),
        (Reply(500, "oops"), TransientError, None),
        (Reply(404, {"message": "no such thing"}), ProviderError, None),
        (Reply(422, {"message": "bad field"}), ProviderError, None),
    ],
)
async def test_error_statuses_map_onto_the_error_tree(
    fake_http: FakeHTTP, reply: Reply, error: type[Exception], retry_after: float | None
) -> None:
    fake_http.script("GET", "/x", reply)
    async with guarded_client("127.0.0.1") as http:
        with pytest.raises(error) as raised:
            await call_node("http.request", {"url": fake_http.url("/x")}, make_context(http))
    assert isinstance(raised.value, ProviderError) and raised.value.status == reply.status
    assert (type(raised.value) is TransientError) == (error is TransientError)
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after
    if isinstance(reply.body, dict):
        assert reply.body["message"] in str(raised.value)


async def test_ok_status_accepts_listed_statuses(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/gone", Reply(410, "gone"))
    async with guarded_client("127.0.0.1") as http:
        out = await call_node("http.request", {"url": fake_http.url("/gone"), "ok_status": [410]}, make_context(http))
    assert out["status"] == 410


async def test_timeouts_are_transient(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/slow", Reply(200, "late", delay=1.0))
    async with guarded_client("127.0.0.1") as http:
        with pytest.raises(TransientError, match="timed out"):
            await call_node("http.request", {"url": fake_http.url("/slow"), "timeout": 0.2}, make_context(http))


async def test_connection_refused_is_transient() -> None:
    async with guarded_client("127.0.0.1") as http:
        with pytest.raises(TransientError, match="connection"):
            await call_node("http.request", {"url": "http://127.0.0.1:9/"}, make_context(http))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/",
        "http://localhost:1/",
        "http://[::1]:1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://0.0.0.0:1/",
        "http://[::ffff:127.0.0.1]:1/",
    ],
)
async def test_private_loopback_and_link_local_destinations_are_refused(url: str) -> None:
    async with guarded_client() as http:
        with pytest.raises(NodeConfigError, match="refusing to connect"):
            await call_node("http.request", {"url": url}, make_context(http))


async def test_redirects_to_private_addresses_are_refused(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/bounce", Reply(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"}))
    async with guarded_client("127.0.0.1") as http:
        with pytest.raises(NodeConfigError, match=r"169\.254\.169\.254"):
            await call_node("http.request", {"url": fake_http.url("/bounce")}, make_context(http))
    assert len(fake_http.calls("/bounce")) == 1


async def test_allowed_redirects_are_followed(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/old", Reply(301, "", {"Location": "/new"}))
    fake_http.script("GET", "/new", Reply(200, {"here": True}))
    async with guarded_client("127.0.0.0/8") as http:
        out = await call_node("http.request", {"url": fake_http.url("/old")}, make_context(http))
    assert out["json"] == {"here": True}


async def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(NodeConfigError, match="absolute http"):
        await call_node("http.request", {"url": "ftp://example.com/file"})
    with pytest.raises(NodeConfigError, match="either `json` or `body`"):
        await call_node("http.request", {"url": "http://example.com", "json": {}, "body": "x"})


def test_allow_list_parses_hosts_and_networks() -> None:
    allow = AllowList.parse(" api.internal , 10.0.0.0/8,127.0.0.1,")
    assert allow.allows_host("API.internal.")
    assert allow.allows_address(ipaddress.ip_address("10.20.30.40"))
    assert allow.allows_address(ipaddress.ip_address("127.0.0.1"))
    assert not allow.allows_address(ipaddress.ip_address("192.168.1.1"))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("fe80::1", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("172.16.5.4", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


# -- the URL's own query string (issue 11 item 1) --------------------------------------------


async def test_the_urls_query_string_is_sent(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/search", Reply(200, {"ok": True}))
    async with guarded_client("127.0.0.1") as http:
        await call_node("http.request", {"url": fake_http.url("/search?q=x&tag=a&tag=b")}, make_context(http))
    assert fake_http.calls("/search")[0].query == {"q": ["x"], "tag": ["a", "b"]}


async def test_query_is_merged_into_the_urls_query_and_wins_on_a_shared_key(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/search", Reply(200, {"ok": True}))
    params = {"url": fake_http.url("/search?a=1&b=old&b=older&c=%20x"), "query": {"b": 2, "d": ["p", "q"]}}
    async with guarded_client("127.0.0.1") as http:
        await call_node("http.request", params, make_context(http))
    assert fake_http.calls("/search")[0].query == {"a": ["1"], "b": ["2"], "c": [" x"], "d": ["p", "q"]}


@pytest.mark.usefixtures("prefect_server")
async def test_retries_resend_the_urls_query_string(fake_http: FakeHTTP) -> None:
    """A workflow run: the fake fails the first two requests that carry ``fail=2``."""
    seen: list[dict[str, list[str]]] = []

    def flaky(request: Recorded) -> Reply:
        seen.append(request.query)
        failing = request.query.get("fail") == ["2"] and len(seen) <= 2
        return Reply(503, "not yet") if failing else Reply(200, {"query": request.query})

    fake_http.route("GET", "/flaky", flaky)
    node = {
        "id": "call",
        "type": "http.request",
        "retries": 2,
        "retry_delay": 0,
        "params": {"url": fake_http.url("/flaky?fail=2&q=x"), "query": {"page": 3}},
    }
    result = await switchboard.arun({"name": "query-retry", "nodes": [node]}, allow_hosts="127.0.0.1", record=False)
    assert result.status == "completed", result.error
    assert result.nodes["call"].attempts == 3
    assert seen == [{"fail": ["2"], "q": ["x"], "page": ["3"]}] * 3
    assert result.nodes["call"].output["json"] == {"query": {"fail": ["2"], "q": ["x"], "page": ["3"]}}
