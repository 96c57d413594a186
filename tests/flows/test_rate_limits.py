"""Per-credential rate limits: Prefect global concurrency limits with slot decay (the test
server sets PREFECT_API_URL, so ``auto`` means ``prefect`` here), or a local token bucket."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

import switchboard
from tests.fakes.http import FakeHTTP
from tests.fakes.openai import FakeOpenAI, completion

pytestmark = pytest.mark.usefixtures("prefect_server")


def resolver_for(base_url: str) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"name": name, "provider": kind, "token": "sk-test", "base_url": base_url}

    return resolve


def fan_out(credential: str, items: int, **node: Any) -> dict[str, Any]:
    return {
        "name": "rate-limited",
        "nodes": [
            {
                "id": "ask",
                "type": "ai.chat",
                "credential": credential,
                "for_each": list(range(items)),
                "concurrency": items,
                "params": {"prompt": "item {{ item }}"},
                **node,
            }
        ],
    }


async def read_limit(name: str) -> Any:
    async with get_client() as client:
        return await client.read_global_concurrency_limit_by_name(name)


async def test_parallel_items_share_the_credentials_budget(fake_http: FakeHTTP) -> None:
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    before = time.monotonic()  # the fake stamps requests with the same clock
    result = await switchboard.arun(
        fan_out("llm-slow", 8, rate_limit={"per_second": 4}),
        credential_resolver=resolver_for(ai.base_url),
        record=False,
    )
    assert result.status == "completed", result.error
    sent = sorted(request.at for request in ai.requests())
    assert len(sent) == 8
    # 4 slots at once, then the slots decay at 4 a second: the last 4 wait about a second
    # (after the limit was made, which is after `before`)
    assert sent[-1] - before >= 0.9
    limit = await read_limit("switchboard:openai:llm-slow")
    assert (limit.limit, limit.slot_decay_per_second, limit.active) == (4, 4.0, True)


async def test_the_provider_default_applies_when_the_node_says_nothing(fake_http: FakeHTTP) -> None:
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    result = await switchboard.arun(
        fan_out("llm-default", 3), credential_resolver=resolver_for(ai.base_url), record=False
    )
    assert result.status == "completed", result.error
    limit = await read_limit("switchboard:openai:llm-default")
    assert (limit.limit, limit.slot_decay_per_second) == (50, 50.0)


async def test_a_changed_rate_updates_the_limit_and_nodes_without_credentials_take_none() -> None:
    definition = {
        "name": "no-provider",
        "nodes": [{"id": "plain", "type": "core.set", "params": {"values": {"a": 1}}}],
    }
    assert (await switchboard.arun(definition, record=False)).status == "completed"
    with pytest.raises(ObjectNotFound):
        await read_limit("switchboard:no-provider:plain")

    definition["nodes"][0]["rate_limit"] = {"per_second": 0.5}
    assert (await switchboard.arun(definition, record=False)).status == "completed"
    limit = await read_limit("switchboard:no-provider:plain")
    assert (limit.limit, limit.slot_decay_per_second) == (1, 0.5)
    definition["nodes"][0]["rate_limit"] = {"per_second": 2}
    assert (await switchboard.arun(definition, record=False)).status == "completed"
    limit = await read_limit("switchboard:no-provider:plain")
    assert (limit.limit, limit.slot_decay_per_second) == (2, 2.0)


async def test_operators_can_turn_rate_limits_off(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_RATE_LIMITS", "off")
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    result = await switchboard.arun(
        fan_out("llm-unlimited", 2), credential_resolver=resolver_for(ai.base_url), record=False
    )
    assert result.status == "completed", result.error
    with pytest.raises(ObjectNotFound):
        await read_limit("switchboard:openai:llm-unlimited")


async def test_the_local_backend_paces_requests_without_touching_prefect(
    fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_RATE_LIMITS", "local")
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("ok"))
    before = time.monotonic()  # the fake stamps requests with the same clock
    result = await switchboard.arun(
        fan_out("llm-local", 12, rate_limit={"per_second": 4}),
        credential_resolver=resolver_for(ai.base_url),
        record=False,
    )
    assert result.status == "completed", result.error
    sent = sorted(request.at for request in ai.requests())
    # A burst of 4, then one every 0.25 s: the 12th slot opens 2 s after the bucket was made,
    # which is after `before`. (Measured from the first request instead, a loaded machine that
    # delays the first request more than the last made this flaky.)
    assert len(sent) == 12 and sent[-1] - before >= 2.0
    with pytest.raises(ObjectNotFound):
        await read_limit("switchboard:openai:llm-local")
