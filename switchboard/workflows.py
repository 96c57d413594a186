"""Stored workflows from the client: apply, list, show, diff, rollback, archive.

``client.workflows`` is a :class:`Workflows` on the client's database; every change is
audited under the caller's ``actor`` (default: the client's).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from flows.model import DefinitionError, Problem, Workflow
from flows.plan import build_plan
from storage.workflows import (
    ApplyResult,
    StoredVersion,
    WorkflowNotFoundError,
    WorkflowStore,
    WorkflowSummary,
)
from switchboard.subworkflows import find_cycle

__all__ = ["ApplyResult", "StoredVersion", "WorkflowNotFoundError", "WorkflowSummary", "Workflows"]


class Workflows:
    """Stored workflows and their versions (``client.workflows``)."""

    def __init__(self, engine: AsyncEngine, actor: str) -> None:
        self._store = WorkflowStore(engine)
        self._actor = actor

    async def apply(self, source: Any, *, actor: str | None = None) -> ApplyResult:
        """Validate a workflow (a path, YAML/JSON text, a dict) and store it as a new version if
        its content changed; :class:`flows.model.DefinitionError` lists every problem."""
        plan = build_plan(source)
        await self.check_calls(plan.workflow)
        return await self._store.apply(plan.workflow.to_dict(), actor=actor or self._actor)

    async def check_calls(self, workflow: Workflow) -> None:
        """Refuse a workflow whose ``core.workflow`` nodes call back into it through the stored
        workflows (``a → b → a``): a :class:`DefinitionError` names the node and the cycle."""
        cycle = await find_cycle(workflow, self._store)
        if cycle is not None:
            node_id, chain = cycle
            problem = Problem(
                f"calls itself through stored workflows: {' → '.join(chain)}", node=node_id, field="params.workflow"
            )
            raise DefinitionError([problem], source=f"workflow '{workflow.name}'")

    async def list(self, *, include_archived: bool = False) -> list[WorkflowSummary]:
        """Stored workflows, by name."""
        return await self._store.list(include_archived=include_archived)

    async def get(self, name: str, version: int | None = None) -> StoredVersion:
        """One stored version (default: the latest); :class:`WorkflowNotFoundError` names the fix."""
        return await self._store.get(name, version)

    async def diff(self, name: str, old: int, new: int) -> str:
        """A unified diff of two versions' YAML (empty when they are equal)."""
        return await self._store.diff(name, old, new)

    async def rollback(self, name: str, version: int, *, actor: str | None = None) -> ApplyResult:
        """Store a new version equal to ``version``."""
        return await self._store.rollback(name, version, actor=actor or self._actor)

    async def archive(self, name: str, *, actor: str | None = None) -> None:
        """Hide a workflow from lists and runs (``apply`` brings it back)."""
        await self._store.archive(name, actor=actor or self._actor)

    async def policy(self, name: str) -> Workflow | None:
        """The latest stored version of ``name`` as a :class:`Workflow`, whose permissions govern
        all its runs (archived or not, whatever version they ran); None when it is not stored."""
        try:
            stored = await self._store.get(name)
        except WorkflowNotFoundError:
            return None
        return Workflow.model_validate(stored.definition)
