"""ai.classify, ai.extract and ai.embed against the fake OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.errors import NodeConfigError, ProviderError
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion, embeddings
from tests.nodes.context import call_node, make_context


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def ctx_for(ai: FakeOpenAI) -> Any:
    return make_context(credential={"token": "sk-test", "base_url": ai.base_url})


async def test_classify_asks_for_one_of_the_labels_and_returns_it(ai: FakeOpenAI) -> None:
    ai.reply(completion('{"label": "bug"}'))
    out = await call_node(
        "ai.classify",
        {"text": "The app crashes on start", "labels": ["bug", "feature", "question"], "instructions": "Be strict."},
        ctx_for(ai),
    )
    assert out == {
        "label": "bug",
        "scores": None,
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        "model": "fake-model",
    }
    sent = ai.requests()[0].json()
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "bug",
        "feature",
        "question",
    ]
    assert "'bug', 'feature', 'question'" in sent["messages"][0]["content"]
    assert sent["messages"][0]["content"].endswith("Be strict.")
    assert sent["messages"][1] == {"role": "user", "content": "The app crashes on start"}


async def test_classify_with_scores_and_a_label_outside_the_set(ai: FakeOpenAI) -> None:
    ai.reply(
        completion('{"label": "feature", "scores": {"bug": 0.1, "feature": 0.9}}'),
        completion('{"label": "rant"}'),
    )
    out = await call_node(
        "ai.classify", {"text": "Add dark mode", "labels": ["bug", "feature"], "scores": True}, ctx_for(ai)
    )
    assert (out["label"], out["scores"]) == ("feature", {"bug": 0.1, "feature": 0.9})
    with pytest.raises(ProviderError, match="does not match json_schema at label"):
        await call_node("ai.classify", {"text": "meh", "labels": ["bug", "feature"]}, ctx_for(ai))


async def test_classify_refuses_duplicate_labels_before_calling(ai: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await call_node("ai.classify", {"text": "x", "labels": ["bug", "bug"]}, ctx_for(ai))
    assert ai.requests() == []


async def test_extract_returns_validated_data(ai: FakeOpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "amount": {"type": ["number", "null"]}},
        "required": ["name", "amount"],
    }
    ai.reply(completion('{"name": "Acme", "amount": 1200}'), completion('{"name": "Acme"}'))
    out = await call_node("ai.extract", {"text": "Invoice from Acme for 1200 EUR", "schema": schema}, ctx_for(ai))
    assert out["data"] == {"name": "Acme", "amount": 1200}
    assert ai.requests()[0].json()["response_format"]["json_schema"]["schema"] == schema
    with pytest.raises(ProviderError, match=r"does not match json_schema at \(root\): 'amount' is a required"):
        await call_node("ai.extract", {"text": "Invoice from Acme", "schema": schema}, ctx_for(ai))


async def test_extract_refuses_an_invalid_schema_without_spending_tokens(ai: FakeOpenAI) -> None:
    with pytest.raises(NodeConfigError, match="`schema` is not a valid JSON schema at type"):
        await call_node("ai.extract", {"text": "x", "schema": {"type": "banana"}}, ctx_for(ai))
    assert ai.requests() == []


async def test_embed_returns_vectors_in_input_order(ai: FakeOpenAI) -> None:
    ai.reply_embeddings(embeddings([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
    out = await call_node("ai.embed", {"texts": ["first", "second"], "dimensions": 3}, ctx_for(ai))
    assert out == {
        "vectors": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        "dimensions": 3,
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
        "model": "fake-embed",
    }
    sent = ai.embedding_requests()[0]
    assert sent.json()["input"] == ["first", "second"] and sent.json()["dimensions"] == 3
    assert sent.headers["authorization"] == "Bearer sk-test"


async def test_embed_rejects_blank_texts_and_short_answers(ai: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="item 1"):
        await call_node("ai.embed", {"texts": ["a", " "]}, ctx_for(ai))
    ai.reply_embeddings(embeddings([[1.0]]))
    with pytest.raises(ProviderError, match="asked for 2 embeddings, the server returned 1"):
        await call_node("ai.embed", {"texts": ["a", "b"]}, ctx_for(ai))


async def test_embed_maps_a_rate_limit_to_transient(ai: FakeOpenAI) -> None:
    from nodes.errors import TransientError

    ai.reply_embeddings(Reply(429, {"error": {"message": "Rate limit reached for embeddings"}}, {"Retry-After": "3"}))
    with pytest.raises(TransientError, match="Rate limit reached for embeddings") as raised:
        await call_node("ai.embed", {"texts": ["a"]}, ctx_for(ai))
    assert raised.value.retry_after == 3.0
