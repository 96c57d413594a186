"""Model fallback on ai.chat and ai.agent: a 503 (or 429) moves the call to the next model at
once, on its own credential if it names one; a permanent error does not; every model failing
transiently leaves the node's own retries to try the list again."""

from __future__ import annotations

from typing import Any

import pytest

import switchboard
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion, tool_calls

pytestmark = pytest.mark.usefixtures("prefect_server")

UNAVAILABLE = Reply(503, {"error": {"message": "the primary is overloaded"}})
MODELS = ["primary", {"model": "backup", "credential": "backup-llm"}]


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def resolver(ai: FakeOpenAI) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": f"sk-{name}", "base_url": ai.base_url}

    return resolve


def one(node_type: str, params: dict[str, Any], **node: Any) -> dict[str, Any]:
    return {
        "name": "fallback-demo",
        "nodes": [{"id": "ask", "type": node_type, "credential": "llm", "params": params, **node}],
    }


async def run(ai: FakeOpenAI, definition: dict[str, Any]) -> Any:
    return await switchboard.arun(definition, credential_resolver=resolver(ai), record=False)


async def test_a_503_falls_back_to_the_next_model_on_its_own_credential(ai: FakeOpenAI) -> None:
    ai.reply(UNAVAILABLE, completion("from the backup", model="backup"))
    result = await run(ai, one("ai.chat", {"prompt": "hi", "model": MODELS}))
    assert result.status == "completed", result.error
    out = result.nodes["ask"].output
    assert (out["text"], out["model"]) == ("from the backup", "backup")
    assert out["fallbacks"] == [{"model": "primary", "credential": None, "error": out["fallbacks"][0]["error"]}]
    assert "503" in out["fallbacks"][0]["error"] and "overloaded" in out["fallbacks"][0]["error"]
    sent = ai.requests()
    assert [r.json()["model"] for r in sent] == ["primary", "backup"]
    assert [r.headers["authorization"] for r in sent] == ["Bearer sk-llm", "Bearer sk-backup-llm"]
    assert result.nodes["ask"].attempts == 1, "no retry was needed"
    assert result.usage["by_model"].keys() == {"backup"}


async def test_a_permanent_error_does_not_fall_back(ai: FakeOpenAI) -> None:
    ai.reply(Reply(400, {"error": {"message": "bad request"}}), completion("never"))
    result = await run(ai, one("ai.chat", {"prompt": "hi", "model": MODELS}))
    assert result.status == "failed" and "bad request" in (result.nodes["ask"].error or "")
    assert len(ai.requests()) == 1


async def test_when_every_model_fails_the_nodes_retries_try_the_list_again(ai: FakeOpenAI) -> None:
    busy = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
    ai.reply(UNAVAILABLE, busy, UNAVAILABLE, completion("second time lucky", model="backup"))
    result = await run(ai, one("ai.chat", {"prompt": "hi", "model": MODELS}, retries=1, retry_delay=0))
    assert result.status == "completed", result.error
    assert result.nodes["ask"].attempts == 2
    assert [r.json()["model"] for r in ai.requests()] == ["primary", "backup", "primary", "backup"]


async def test_an_agents_model_calls_fall_back_and_say_so(ai: FakeOpenAI) -> None:
    ai.reply(
        tool_calls(("echo", {"template": "x"}), model="primary"),
        UNAVAILABLE,
        completion("done by the backup", model="backup"),
    )
    params = {"prompt": "go", "model": MODELS, "tools": [{"node": "text.template", "name": "echo"}]}
    result = await run(ai, one("ai.agent", params))
    assert result.status == "completed", result.error
    out = result.nodes["ask"].output
    assert (out["text"], out["model"], out["model_calls"]) == ("done by the backup", "backup", 2)
    assert [f["model"] for f in out["fallbacks"]] == ["primary"]


def test_a_model_list_is_checked() -> None:
    for bad in ([], ["a"] * 6, [{"model": "x", "key": "y"}]):
        with pytest.raises(switchboard.DefinitionError):
            switchboard.validate(one("ai.chat", {"prompt": "hi", "model": bad}))
