"""memory.* and state.* nodes on SQLite and on a real Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import switchboard
from nodes.errors import NodeConfigError, NodeError
from storage.memory import MemoryStore
from tests.nodes.context import call_node, make_context

pytestmark = pytest.mark.both_databases  # memory and state rows: their SQL differs by backend


@pytest.fixture
def memory(engine: AsyncEngine) -> MemoryStore:
    return MemoryStore(engine)


def ctx_with(memory: MemoryStore) -> Any:
    ctx = make_context()
    ctx.memory_backend = memory
    return ctx


async def test_chat_memory_keeps_turns_per_session_oldest_first(memory: MemoryStore) -> None:
    ctx = ctx_with(memory)
    for i, role in enumerate(["user", "assistant", "user"]):
        out = await call_node("memory.chat_append", {"session": "T1", "role": role, "content": f"m{i}"}, ctx)
        assert out == {"session": "T1", "count": i + 1}
    await call_node("memory.chat_append", {"session": "other", "role": "user", "content": "x"}, ctx)
    history = await call_node("memory.chat_history", {"session": "T1"}, ctx)
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "m0"),
        ("assistant", "m1"),
        ("user", "m2"),
    ]
    last_two = await call_node("memory.chat_history", {"session": "T1", "limit": 2}, ctx)
    assert [m["content"] for m in last_two["messages"]] == ["m1", "m2"]
    assert (await call_node("memory.chat_history", {"session": "empty"}, ctx)) == {"messages": []}


async def test_state_get_set_ttl_and_scopes(memory: MemoryStore) -> None:
    ctx = ctx_with(memory)
    assert await call_node("state.get", {"key": "k", "default": 7}, ctx) == {"value": 7, "found": False}
    assert await call_node("state.set", {"key": "k", "value": {"a": [1]}}, ctx) == {"value": {"a": [1]}}
    assert await call_node("state.get", {"key": "k"}, ctx) == {"value": {"a": [1]}, "found": True}
    assert (await call_node("state.get", {"key": "k", "scope": "shared"}, ctx))["found"] is False
    await call_node("state.set", {"key": "brief", "value": 1, "ttl": 0.2}, ctx)
    await asyncio.sleep(0.3)
    assert await call_node("state.get", {"key": "brief", "default": "gone"}, ctx) == {"value": "gone", "found": False}


async def test_incr_is_atomic_under_concurrency(memory: MemoryStore) -> None:
    ctx = ctx_with(memory)
    results = await asyncio.gather(*(call_node("state.incr", {"key": "n"}, ctx) for _ in range(20)))
    assert sorted(r["value"] for r in results) == list(range(1, 21))
    assert (await call_node("state.incr", {"key": "n", "by": -5}, ctx)) == {"value": 15}
    await call_node("state.set", {"key": "text", "value": "abc"}, ctx)
    with pytest.raises(NodeError, match="not a number"):
        await call_node("state.incr", {"key": "text"}, ctx)


async def test_nodes_without_a_database_say_so() -> None:
    with pytest.raises(NodeConfigError, match="needs Switchboard's database"):
        await call_node("state.get", {"key": "k"})


@pytest.mark.usefixtures("prefect_server")
async def test_state_and_memory_persist_across_runs(
    memory: MemoryStore, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    definition = {
        "name": "counter",
        "inputs": {"text": {"type": "string"}},
        "nodes": [
            {"id": "count", "type": "state.incr", "params": {"key": "runs"}},
            {
                "id": "say",
                "type": "memory.chat_append",
                "params": {"session": "s", "role": "user", "content": "{{ inputs.text }}"},
            },
            {"id": "recall", "type": "memory.chat_history", "needs": ["say"], "params": {"session": "s"}},
        ],
    }
    first = await switchboard.arun(definition, {"text": "hello"})
    second = await switchboard.arun(definition, {"text": "again"})
    assert (first.nodes["count"].output, second.nodes["count"].output) == ({"value": 1}, {"value": 2})
    assert [m["content"] for m in second.nodes["recall"].output["messages"]] == ["hello", "again"]
