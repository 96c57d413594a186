"""Stored workflows from the client: apply, list, show, diff, rollback, archive.

``client.workflows`` is a :class:`Workflows` on the client's database; every change is
audited under the caller's ``actor`` (default: the client's).
"""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from flows.model import DefinitionError, Problem, Workflow
from flows.plan import build_plan
from storage.workflows import (
    ApplyResult,
    FolderChange,
    StoredVersion,
    WorkflowNotFoundError,
    WorkflowStore,
    WorkflowSummary,
)
from switchboard.subworkflows import find_cycle, static_calls, stored_lookup

#: The most workflow files one folder may hold.
MAX_FOLDER_FILES = 1000
#: The files of a folder that are workflows.
WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


def workflow_files(folder: Path) -> list[Path]:
    """The workflow files below ``folder`` (sorted; hidden folders skipped), at most
    :data:`MAX_FOLDER_FILES` of them."""
    if not folder.is_dir():
        raise DefinitionError([Problem(f"{folder} is not a folder")], source=str(folder))
    found: list[Path] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in WORKFLOW_SUFFIXES:
            continue
        if path.is_file():
            found.append(path)
            if len(found) > MAX_FOLDER_FILES:
                problem = Problem(f"holds more than {MAX_FOLDER_FILES} workflow files; apply its subfolders one by one")
                raise DefinitionError([problem], source=f"folder {folder}")
    if not found:
        raise DefinitionError([Problem("holds no *.yaml, *.yml or *.json workflow files")], source=f"folder {folder}")
    return found


__all__ = ["ApplyResult", "FolderChange", "StoredVersion", "WorkflowNotFoundError", "WorkflowSummary", "Workflows"]


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

    async def apply_folder(self, folder: Path, *, prune: bool = False, dry_run: bool = False) -> list[FolderChange]:
        """Apply every ``*.yaml``/``*.yml``/``*.json`` below ``folder`` in one transaction (all
        or nothing); ``prune`` archives stored workflows that are not in the folder; ``dry_run``
        only says what would change. A :class:`DefinitionError` lists every problem of every
        file (and the calls between them: unknown workflows, cycles) before anything is written."""
        files = workflow_files(folder)
        problems: list[Problem] = []
        by_name: dict[str, tuple[Path, Workflow]] = {}
        for path in files:
            where = str(path.relative_to(folder))
            try:
                workflow = build_plan(path).workflow
            except DefinitionError as exc:
                problems += [Problem(str(problem), field=where) for problem in exc.problems]
                continue
            if workflow.name in by_name:
                other = by_name[workflow.name][0].relative_to(folder)
                problems.append(Problem(f"workflow '{workflow.name}' is also defined in {other}", field=where))
                continue
            by_name[workflow.name] = (path, workflow)
        stored = stored_lookup(self._store)

        async def lookup(name: str) -> Workflow | None:
            if name in by_name:
                return by_name[name][1]
            return None if prune else await stored(name)

        for path, workflow in by_name.values():
            where = str(path.relative_to(folder))
            for node_id, callee in static_calls(workflow).items():
                if await lookup(callee) is None:
                    gone = " (--prune would archive it)" if prune and await stored(callee) is not None else ""
                    missing = f"calls workflow '{callee}', which is neither in the folder nor stored{gone}"
                    problems.append(Problem(f"node '{node_id}': {missing}", field=where))
            cycle = await find_cycle(workflow, lookup)
            if cycle is not None:
                node_id, chain = cycle
                problems.append(Problem(f"node '{node_id}': calls itself: {' → '.join(chain)}", field=where))
        if problems:
            raise DefinitionError(problems, source=f"folder {folder}")
        definitions = [workflow.to_dict() for _, workflow in sorted(by_name.values(), key=lambda item: item[1].name)]
        return await self._store.apply_all(definitions, actor=self._actor, prune=prune, dry_run=dry_run)

    async def check_calls(self, workflow: Workflow) -> None:
        """Refuse a workflow whose ``core.workflow`` nodes call back into it through the stored
        workflows (``a → b → a``): a :class:`DefinitionError` names the node and the cycle."""
        cycle = await find_cycle(workflow, stored_lookup(self._store))
        if cycle is not None:
            node_id, chain = cycle
            problem = Problem(
                f"calls itself through stored workflows: {' → '.join(chain)}", node=node_id, field="params.workflow"
            )
            raise DefinitionError([problem], source=f"workflow '{workflow.name}'")

    async def unknown_calls(self, workflow: Workflow) -> dict[str, str]:
        """The workflow's literal ``core.workflow`` calls to workflows that are not stored:
        node id -> name (storing it is allowed; its runs fail that node until one is)."""
        lookup = stored_lookup(self._store)
        return {node_id: name for node_id, name in static_calls(workflow).items() if await lookup(name) is None}

    async def list(self, *, include_archived: bool = False) -> list[WorkflowSummary]:
        """Stored workflows, by name."""
        return await self._store.list(include_archived=include_archived)

    async def get(self, name: str, version: int | None = None) -> StoredVersion:
        """One stored version (default: the latest); :class:`WorkflowNotFoundError` names the fix."""
        return await self._store.get(name, version)

    async def versions(self, name: str) -> builtins.list[StoredVersion]:
        """Every stored version of ``name``, oldest first; :class:`WorkflowNotFoundError`."""
        return await self._store.versions(name)

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
