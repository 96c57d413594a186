"""ai.chat against a fake OpenAI-compatible server over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from nodes.errors import AuthError, ProviderError, TransientError
from storage.memory import MemoryStore
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion
from tests.nodes.context import call_node, make_context


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def ctx_for(ai: FakeOpenAI, memory: MemoryStore | None = None) -> Any:
    ctx = make_context(credential={"token": "sk-test", "base_url": ai.base_url})
    ctx.memory_backend = memory
    return ctx


async def test_chat_returns_text_usage_and_model(ai: FakeOpenAI) -> None:
    ai.reply(completion("A short summary."))
    out = await call_node(
        "ai.chat", {"model": "m1", "prompt": "Summarize this", "system": "Be brief", "temperature": 0.2}, ctx_for(ai)
    )
    assert out == {
        "text": "A short summary.",
        "data": None,
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        "model": "fake-model",
        "fallbacks": [],
    }
    sent = ai.requests()[0]
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json()["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Summarize this"},
    ]
    assert sent.json()["temperature"] == 0.2


async def test_memory_session_sends_earlier_turns_and_keeps_this_one(ai: FakeOpenAI, engine: AsyncEngine) -> None:
    memory = MemoryStore(engine)
    ai.reply(completion("Hi Ada."), completion("Your name is Ada."))
    await call_node("ai.chat", {"prompt": "I am Ada", "memory_session": "t1"}, ctx_for(ai, memory))
    out = await call_node("ai.chat", {"prompt": "Who am I?", "memory_session": "t1"}, ctx_for(ai, memory))
    assert out["text"] == "Your name is Ada."
    assert [m["content"] for m in ai.last_messages()] == ["I am Ada", "Hi Ada.", "Who am I?"]
    history = await memory.history("t1", 10)
    assert [(m.role, m.content) for m in history][-2:] == [("user", "Who am I?"), ("assistant", "Your name is Ada.")]


async def test_json_schema_replies_are_parsed_and_validated(ai: FakeOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
        "required": ["label", "score"],
    }
    ai.reply(completion('{"label": "bug", "score": 0.9}'), completion('{"label": "bug", "score": "high"}'))
    out = await call_node("ai.chat", {"prompt": "classify", "json_schema": schema}, ctx_for(ai))
    assert out["data"] == {"label": "bug", "score": 0.9}
    assert ai.requests()[0].json()["response_format"]["type"] == "json_schema"
    with pytest.raises(ProviderError, match="does not match json_schema at score"):
        await call_node("ai.chat", {"prompt": "classify", "json_schema": schema}, ctx_for(ai))


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (
            Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "2"}),
            TransientError,
            "Rate limit reached",
        ),
        (Reply(500, {"error": {"message": "overloaded"}}), TransientError, "overloaded"),
        (Reply(400, {"error": {"message": "model not found"}}), ProviderError, "model not found"),
        (Reply(401, {"error": {"message": "bad key"}}), AuthError, "reconnect credential 'test-credential'"),
    ],
)
async def test_errors_map_onto_the_error_tree(ai: FakeOpenAI, reply: Reply, error: type[Exception], text: str) -> None:
    ai.reply(reply)
    with pytest.raises(error, match=text) as raised:
        await call_node("ai.chat", {"prompt": "hi"}, ctx_for(ai))
    assert type(raised.value) is error
    if reply.status == 429:
        assert isinstance(raised.value, TransientError) and raised.value.retry_after == 2.0
    assert len(ai.requests()) == 1, "no SDK-level retries"


@pytest.mark.usefixtures("prefect_server")
async def test_a_rate_limited_chat_is_retried_by_the_nodes_own_retries(ai: FakeOpenAI) -> None:
    import switchboard

    ai.reply(Reply(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"}), completion("done"))

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": "sk-test", "base_url": ai.base_url}

    definition = {
        "name": "ai-retry",
        "nodes": [
            {
                "id": "ask",
                "type": "ai.chat",
                "credential": "llm",
                "retries": 2,
                "retry_delay": 0,
                "params": {"prompt": "hi"},
            }
        ],
    }
    result = await switchboard.arun(definition, credential_resolver=resolve, record=False)
    assert (result.status, result.nodes["ask"].attempts) == ("completed", 2)
    assert result.nodes["ask"].output["text"] == "done"
    assert len(ai.requests()) == 2

    ai.reply(Reply(400, {"error": {"message": "model 'nope' not found"}}))
    failed = await switchboard.arun(definition, credential_resolver=resolve, record=False)
    assert (failed.status, failed.nodes["ask"].attempts) == ("failed", 1)
    assert "model 'nope' not found" in (failed.nodes["ask"].error or "")
