"""Versioned workflows on SQLite and on a real Postgres (a fresh database per test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.audit import entries
from storage.db import create_engine, ensure_schema
from storage.migrate import SchemaBehindError, upgrade
from storage.workflows import WorkflowNotFoundError, WorkflowStore, checksum


def definition(text: str = "hello", name: str = "greeter") -> dict[str, Any]:
    return {
        "name": name,
        "description": f"says {text}",
        "nodes": [{"id": "t", "type": "text.template", "params": {"template": text}}],
    }


@pytest.fixture
def store(engine: AsyncEngine) -> WorkflowStore:
    return WorkflowStore(engine)


async def test_apply_creates_versions_only_when_content_changes(store: WorkflowStore) -> None:
    first = await store.apply(definition("hello"), actor="u1")
    same = await store.apply(definition("hello"), actor="u1")
    second = await store.apply(definition("bye"), actor="u2")
    assert (first.version, first.created) == (1, True)
    assert (same.version, same.created) == (1, False)
    assert (second.version, second.created) == (2, True)
    latest = await store.get("greeter")
    assert latest.version == 2 and latest.definition == definition("bye")
    assert latest.created_by == "u2" and latest.checksum == checksum(definition("bye"))
    assert (await store.get("greeter", 1)).definition == definition("hello")
    assert [v.version for v in await store.versions("greeter")] == [1, 2]


async def test_checksum_ignores_key_order() -> None:
    a = {"name": "x", "nodes": [{"id": "a", "type": "core.set"}]}
    b = {"nodes": [{"type": "core.set", "id": "a"}], "name": "x"}
    assert checksum(a) == checksum(b)


async def test_concurrent_applies_get_consecutive_versions(store: WorkflowStore) -> None:
    await store.apply(definition("v0"), actor="seed")
    results = await asyncio.gather(*(store.apply(definition(f"text {i}"), actor=f"u{i}") for i in range(6)))
    versions = sorted(r.version for r in results)
    assert versions == [2, 3, 4, 5, 6, 7]
    stored = await store.versions("greeter")
    assert [v.version for v in stored] == [1, 2, 3, 4, 5, 6, 7]
    assert {v.definition["nodes"][0]["params"]["template"] for v in stored[1:]} == {f"text {i}" for i in range(6)}


async def test_diff_rollback_and_archive(store: WorkflowStore) -> None:
    await store.apply(definition("one"), actor="u")
    await store.apply(definition("two"), actor="u")
    text = await store.diff("greeter", 1, 2)
    assert "-    template: one" in text and "+    template: two" in text
    back = await store.rollback("greeter", 1, actor="u")
    assert (back.version, back.created) == (3, True)
    assert (await store.get("greeter")).definition == definition("one")
    again = await store.rollback("greeter", 3, actor="u")
    assert again.created is False
    await store.archive("greeter", actor="u")
    assert await store.list() == []
    assert [w.name for w in await store.list(include_archived=True)] == ["greeter"]
    revived = await store.apply(definition("one"), actor="u")
    assert revived.created and revived.version == 4
    assert [w.name for w in await store.list()] == ["greeter"]
    actions = [(e.action, e.target) for e in reversed(await entries(store.engine))]
    assert actions == [
        ("apply", "greeter v1"),
        ("apply", "greeter v2"),
        ("rollback", "greeter v3"),
        ("archive", "greeter"),
        ("apply", "greeter v4"),
    ]


async def test_unknown_names_and_versions_are_clear_errors(store: WorkflowStore) -> None:
    with pytest.raises(WorkflowNotFoundError, match="no stored workflow named 'nope'"):
        await store.get("nope")
    await store.apply(definition(), actor="u")
    with pytest.raises(WorkflowNotFoundError, match="has no version 9"):
        await store.get("greeter", 9)


async def test_schema_check(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        if database_url.startswith("sqlite"):
            await ensure_schema(engine)  # the embedded default migrates itself
            await ensure_schema(engine)
        else:
            with pytest.raises(SchemaBehindError, match="switchboard db upgrade"):
                await ensure_schema(engine)
            await upgrade(engine)
            await ensure_schema(engine)
        assert await WorkflowStore(engine).list() == []
    finally:
        await engine.dispose()
