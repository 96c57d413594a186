"""What a pooled provider client saves: ``python -m bench.rest_clients [--requests N] [--reps R]``.

N sequential HubSpot requests (``GET /crm/v3/objects/contacts/<id>`` against the local fake
HubSpot, which keeps connections alive like the real one) made two ways, in one event loop:

* **a client per request** — what ``nodes.rest.RestProvider`` did before issue 11: a new
  ``httpx.AsyncClient`` (and so a new TLS context and a new TCP connection) for each request;
* **pooled** — ``RestProvider.request`` now: the loop's pooled client for the base URL
  (``nodes.provider_clients``), one kept-alive connection.

Prints the median per-request time of R repetitions of each and their ratio; never fails.
Over HTTPS the per-request client would also pay a TLS handshake per request, so the real
saving is larger than the one measured here over plain HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from nodes.context import NodeContext
from nodes.hubspot import transport
from nodes.provider_clients import aclose_clients
from tests.fakes.http import FakeHTTP
from tests.fakes.hubspot import FakeHubSpot
from tests.nodes.context import make_context

TOKEN = "pat-bench"


async def per_request_client(ctx: NodeContext, path: str) -> Any:
    """The request as RestProvider made it before: a client opened and closed around it."""
    token, base_url = ctx.token_of(await ctx.credential())
    async with httpx.AsyncClient(timeout=transport.HUBSPOT.timeout) as client:
        response = await client.request("GET", f"{base_url}{path}", headers={"Authorization": f"Bearer {token}"})
    transport.HUBSPOT.raise_for_status(ctx, response)
    return response.json()


async def pooled(ctx: NodeContext, path: str) -> Any:
    return await transport.call(ctx, "GET", path)


async def measure(call: Callable[[NodeContext, str], Awaitable[Any]], ctx: NodeContext, path: str, n: int) -> float:
    """Milliseconds per request over ``n`` sequential requests."""
    start = time.perf_counter()
    for _ in range(n):
        await call(ctx, path)
    return (time.perf_counter() - start) * 1000 / n


async def main(requests: int, reps: int) -> None:
    fake = FakeHTTP(keep_alive=True).start()
    try:
        hubspot = FakeHubSpot(fake, token=TOKEN)
        contact_id = hubspot.add_contact(email="ada@acme.io", firstname="Ada")
        path = f"/crm/v3/objects/contacts/{contact_id}"
        ctx = make_context(credential={"token": TOKEN, "base_url": hubspot.base_url})
        await pooled(ctx, path)  # warm up imports and the fake
        results: dict[str, list[float]] = {"a client per request": [], "pooled": []}
        connections: dict[str, int] = {}
        for _ in range(reps):
            for name, call in (("a client per request", per_request_client), ("pooled", pooled)):
                await aclose_clients()  # every repetition starts without a pooled client
                before = fake.connections_opened
                results[name].append(await measure(call, ctx, path, requests))
                connections[name] = fake.connections_opened - before
        await aclose_clients()
    finally:
        fake.stop()

    print(f"\n{requests} sequential HubSpot-fake requests, median of {reps} (Python {platform.python_version()})\n")
    print("| way | ms per request | TCP connections | ratio |")
    print("|---|---:|---:|---:|")
    baseline = statistics.median(results["a client per request"])
    for name, times in results.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} | {connections[name]} | {baseline / median:.1f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.reps))
