"""nodes.rest.RestProvider over real HTTP to a local fake: URLs, pooled clients, hostile bodies."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodes.context import NodeContext
from nodes.providers import Provider
from nodes.rest import RestProvider
from tests.fakes.http import FakeHTTP, Recorded, Reply
from tests.nodes.context import make_context

TOKEN = "rest-token"


def provider_for(base_url: str) -> tuple[RestProvider, NodeContext]:
    provider = RestProvider(Provider("fakeapi", "Fake API", base_url))
    return provider, make_context(credential={"token": TOKEN, "base_url": base_url})


async def test_a_path_with_a_query_string_keeps_it_when_params_are_given(fake_http: FakeHTTP) -> None:
    """A pagination link (path and query from the provider) plus the caller's own parameters."""
    fake_http.script("GET", "/items", Reply(200, {"items": []}))
    provider, ctx = provider_for(fake_http.base_url)
    await provider.request(ctx, "GET", "/items?cursor=abc%3D&limit=5", params={"limit": 10, "fields": "id"})
    assert fake_http.calls("/items")[0].query == {"cursor": ["abc="], "limit": ["10"], "fields": ["id"]}


# -- one pooled client per (event loop, base URL) (issue 11 item 7) ---------------------------

REQUESTS = 20


@pytest.fixture
def keep_alive() -> Iterator[FakeHTTP]:
    """A fake that keeps connections open, as providers do, and counts them."""
    fake = FakeHTTP(keep_alive=True).start()
    fake.route("GET", "/items", lambda request: Reply(200, {"items": [], "peer": list(request.peer)}))
    try:
        yield fake
    finally:
        fake.stop()


async def requests_through(base_url: str, count: int = REQUESTS) -> None:
    provider, ctx = provider_for(base_url)
    for _ in range(count):
        await provider.request(ctx, "GET", "/items")


def in_a_fresh_loop(fake: FakeHTTP) -> list[str]:
    """What a CLI command does: ``asyncio.run`` once; returns the ResourceWarnings it left."""
    gc.collect()  # earlier tests' garbage warns now, not inside the window below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(requests_through(fake.base_url))
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_many_requests_through_a_provider_reuse_one_connection(keep_alive: FakeHTTP) -> None:
    await requests_through(keep_alive.base_url)
    assert len(keep_alive.requests) == REQUESTS
    assert keep_alive.connections_opened == 1
    assert len({r.peer for r in keep_alive.requests}) == 1


async def test_a_loop_that_ends_closes_its_clients(keep_alive: FakeHTTP) -> None:
    leftovers = await asyncio.to_thread(in_a_fresh_loop, keep_alive)
    assert keep_alive.connections_opened == 1
    assert keep_alive.wait_closed() == 0, "the client was closed when its loop ended"
    assert leftovers == []


async def test_each_event_loop_has_its_own_client(keep_alive: FakeHTTP) -> None:
    """A client's connections belong to the loop that opened them: the test's loop and a
    thread's loop, running at the same time, each get one connection of their own."""
    await asyncio.gather(requests_through(keep_alive.base_url), asyncio.to_thread(in_a_fresh_loop, keep_alive))
    assert len(keep_alive.requests) == 2 * REQUESTS
    assert keep_alive.connections_opened == 2
    assert len({r.peer for r in keep_alive.requests}) == 2


def test_a_process_leaves_no_connection_or_warning_behind(keep_alive: FakeHTTP) -> None:
    """A real process: two ``asyncio.run`` in a row (two loops, two clients), then a loop left
    open, under ``-X dev`` with ResourceWarning as an error. The process's last exit hook asks
    the fake how many connections are still open once Switchboard's exit hook has run."""

    def open_connections(request: Recorded) -> Reply:
        keep_alive.wait_closed_but(1)  # this request's own connection stays open
        return Reply(200, {"open": keep_alive.open_connections - 1})

    keep_alive.route("GET", "/open-connections", open_connections)
    script = textwrap.dedent(
        f"""
        import asyncio, atexit, urllib.request

        def report():  # registered first, so it runs after every other exit hook
            print(urllib.request.urlopen({keep_alive.url("/open-connections")!r}, timeout=30).read().decode())

        atexit.register(report)
        atexit.register(lambda: loop.close())  # the script's own tidy-up, after Switchboard's hook
        from tests.nodes.test_rest import requests_through

        asyncio.run(requests_through({keep_alive.base_url!r}, 5))
        asyncio.run(requests_through({keep_alive.base_url!r}, 5))
        loop = asyncio.new_event_loop()
        loop.run_until_complete(requests_through({keep_alive.base_url!r}, 5))
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "unclosed" not in done.stderr.lower(), done.stderr
    assert json.loads(done.stdout) == {"open": 0}, "the loop left open had its client closed at exit"
    assert len(keep_alive.calls("/items")) == 15
    assert keep_alive.connections_opened == 4, "one per loop, and the exit hook's report"
