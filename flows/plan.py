"""Validation and planning: a workflow definition becomes a checked DAG.

:func:`build_plan` reports *every* problem at once (each naming the node id and field) and
runs in linear time in nodes + edges. Edges are the explicit ``needs`` plus every
``nodes.<id>`` reference found in a node's templates; ``needs: ["<id>:<port>"]`` takes a
branch port of an ``core.if`` / ``core.switch`` node.
"""

from __future__ import annotations

import difflib
import gc
import os
import socket
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flows import triggers
from flows.expressions import Compiled, ExpressionError, Template, compile_value
from flows.model import DefinitionError, NodeDef, Problem, Workflow, load_definition
from nodes.plugins import failed_plugins
from nodes.registry import REGISTRY, NodeSpec, Registry, UnknownNodeTypeError


@dataclass(frozen=True)
class Edge:
    """An incoming dependency: ``source`` must finish first; ``port`` gates a branch."""

    source: str
    port: str | None = None
    explicit: bool = True


@dataclass
class PlannedNode:
    """A node ready to run: its spec, parsed templates and incoming edges."""

    definition: NodeDef
    spec: NodeSpec
    params: Compiled
    for_each: Compiled | None
    cache_key: Compiled | None
    edges: list[Edge] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def upstream(self) -> list[str]:
        return list(dict.fromkeys(edge.source for edge in self.edges))


@dataclass
class Plan:
    """A validated workflow: nodes in a topological order."""

    workflow: Workflow
    nodes: dict[str, PlannedNode]
    order: list[str]
    #: The declared outputs, compiled (rendered by the runner once every node has finished).
    outputs: dict[str, Compiled] = field(default_factory=dict)

    @property
    def downstream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {node_id: [] for node_id in self.nodes}
        for planned in self.nodes.values():
            for source in planned.upstream:
                out[source].append(planned.id)
        return out


def _unknown_type(exc: UnknownNodeTypeError) -> str:
    """An unknown type, with where it is unknown: plans are built by the process that runs them
    (a worker may lack a plugin the CLI has), and which plugins failed to load there."""
    if exc.suggestions:
        return str(exc)
    broken = ", ".join(f"{plugin.name} ({plugin.error})" for plugin in failed_plugins())
    where = f" on {socket.gethostname()} (pid {os.getpid()})"
    hint = (
        f"; node plugins that did not load here: {broken}"
        if broken
        else "; is the plugin that provides it installed here?"
    )
    return f"{exc}{where}{hint}"


def _close(name: str, known: Mapping[str, Any]) -> str:
    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=0.7) if len(known) < 5000 else []
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _check_params(node: NodeDef, spec: NodeSpec, compiled: Compiled, problems: list[Problem]) -> None:
    """Validate literal params now; templated ones are validated after rendering."""
    templated_fields = (
        {key for key, value in compiled.value.items() if _has_template(value)} if compiled.templated else set()
    )
    try:
        spec.params_model.model_validate(node.params)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            if loc and loc[0] in templated_fields:
                continue
            path = ".".join(str(part) for part in loc)
            problems.append(Problem(err["msg"], node=node.id, field=f"params.{path}" if path else "params"))


def _has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return True
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def _literal_params(node: NodeDef, compiled: Compiled) -> Mapping[str, Any]:
    if not compiled.templated:
        return node.params
    return {k: v for k, v in node.params.items() if not _has_template(compiled.value[k])}


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Planning allocates many small, acyclic objects; the cyclic collector's passes over a
    growing heap made it superlinear (measured: 10,000 nodes 850 ms with, 290 ms without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_plan(source: Any, *, registry: Registry | None = None) -> Plan:
    """Validate a workflow (file path, text, dict or :class:`Workflow`) and plan it.

    Raises :class:`DefinitionError` listing every problem found.
    """
    with _cyclic_gc_paused():
        return _build_plan(source, registry or REGISTRY)


def _build_plan(source: Any, registry: Registry) -> Plan:
    workflow = load_definition(source)
    problems: list[Problem] = []

    by_id: dict[str, NodeDef] = {}
    for n in workflow.nodes:
        if n.id in by_id:
            problems.append(Problem("duplicate node id", node=n.id, field="id"))
        else:
            by_id[n.id] = n

    planned: dict[str, PlannedNode] = {}
    for n in by_id.values():
        try:
            spec = registry.get(n.type, n.type_version)
        except UnknownNodeTypeError as exc:
            problems.append(Problem(_unknown_type(exc), node=n.id, field="type"))
            continue
        ok = True
        compiled_fields: dict[str, Compiled | None] = {}
        for name, value in (
            ("params", n.params),
            ("for_each", n.for_each),
            ("cache.key", n.cache.key if n.cache else None),
        ):
            if value is None:
                compiled_fields[name] = None
                continue
            try:
                compiled_fields[name] = compile_value(value, name)
            except ExpressionError as exc:
                problems.append(Problem(exc.message, node=n.id, field=exc.path or name))
                ok = False
        if not ok:
            continue
        params = compiled_fields["params"] or compile_value({})
        _check_params(n, spec, params, problems)
        for_each = compiled_fields["for_each"]
        if for_each is not None and not for_each.templated and not isinstance(n.for_each, list):
            problems.append(Problem("must be a list or a template that renders to one", node=n.id, field="for_each"))
        for name, compiled in (("params", params), ("cache.key", compiled_fields["cache.key"])):
            if for_each is None and compiled is not None and compiled.names & {"item", "index"}:
                problems.append(Problem("uses `item`/`index` but the node has no `for_each`", node=n.id, field=name))
        for name, compiled in (("params", params), ("for_each", for_each), ("cache.key", compiled_fields["cache.key"])):
            for key in sorted(compiled.inputs - workflow.inputs.keys()) if compiled else ():
                declared = ", ".join(sorted(workflow.inputs)) or "none"
                problems.append(Problem(f"uses undeclared input '{key}' (declared: {declared})", node=n.id, field=name))
        if spec.credential and not n.credential:
            problems.append(Problem(f"needs a `{spec.credential}` credential name", node=n.id, field="credential"))
        planned[n.id] = PlannedNode(n, spec, params, for_each, compiled_fields["cache.key"])

    # Edges: explicit needs (optionally through a port), then implicit template references.
    for node_id, p in planned.items():
        n = p.definition
        seen: set[tuple[str, str | None]] = set()
        for i, need in enumerate(n.needs):
            source, _, port = need.partition(":")
            port_or_none = port or None
            if source == node_id:
                problems.append(Problem("a node cannot depend on itself", node=node_id, field=f"needs[{i}]"))
                continue
            if source not in by_id:
                problems.append(
                    Problem(f"unknown node '{source}'{_close(source, by_id)}", node=node_id, field=f"needs[{i}]")
                )
                continue
            if port_or_none is not None and source in planned:
                upstream = planned[source]
                if upstream.spec.ports is None:
                    problems.append(
                        Problem(
                            f"node '{source}' ({upstream.spec.type}) has no ports", node=node_id, field=f"needs[{i}]"
                        )
                    )
                    continue
                ports = upstream.spec.ports(_literal_params(upstream.definition, upstream.params))
                if ports is not None and port_or_none not in ports:
                    problems.append(
                        Problem(
                            f"node '{source}' has no port '{port_or_none}' (ports: {', '.join(ports)})",
                            node=node_id,
                            field=f"needs[{i}]",
                        )
                    )
                    continue
            if (source, port_or_none) not in seen:
                seen.add((source, port_or_none))
                p.edges.append(Edge(source, port_or_none, explicit=True))
        explicit_sources = {edge.source for edge in p.edges}
        refs: set[str] = set()
        for name, compiled in (("params", p.params), ("for_each", p.for_each), ("cache.key", p.cache_key)):
            if compiled is None:
                continue
            for ref in sorted(compiled.refs):
                if ref == node_id:
                    problems.append(Problem("a node cannot reference its own output", node=node_id, field=name))
                elif ref not in by_id:
                    problems.append(
                        Problem(f"references unknown node '{ref}'{_close(ref, by_id)}", node=node_id, field=name)
                    )
                elif ref not in explicit_sources and ref not in refs:
                    refs.add(ref)
                    p.edges.append(Edge(ref, None, explicit=False))

    _check_schedule(workflow, problems)
    problems.extend(
        Problem(message, field=where) for where, message in triggers.problems(workflow.triggers, workflow.inputs)
    )
    outputs = _compile_outputs(workflow, by_id, problems)
    order = _topological_order(planned, problems)
    if problems:
        raise DefinitionError(problems, source=f"workflow '{workflow.name}'")
    return Plan(workflow=workflow, nodes={node_id: planned[node_id] for node_id in order}, order=order, outputs=outputs)


def _compile_outputs(workflow: Workflow, by_id: Mapping[str, NodeDef], problems: list[Problem]) -> dict[str, Compiled]:
    """Compile each declared output; it may read the inputs, the nodes and ``run``."""
    compiled: dict[str, Compiled] = {}
    for name, value in workflow.outputs.items():
        where = f"outputs.{name}"
        try:
            output = compile_value(value, where)
        except ExpressionError as exc:
            problems.append(Problem(exc.message, field=exc.path or where))
            continue
        ok = True
        for ref in sorted(output.refs - by_id.keys()):
            problems.append(Problem(f"references unknown node '{ref}'{_close(ref, by_id)}", field=where))
            ok = False
        for key in sorted(output.inputs - workflow.inputs.keys()):
            declared = ", ".join(sorted(workflow.inputs)) or "none"
            problems.append(Problem(f"uses undeclared input '{key}' (declared: {declared})", field=where))
            ok = False
        if output.names & {"item", "index"}:
            problems.append(Problem("uses `item`/`index`, which exist only inside a node's `for_each`", field=where))
            ok = False
        if ok:
            compiled[name] = output
    return compiled


def _check_schedule(workflow: Workflow, problems: list[Problem]) -> None:
    schedule = workflow.schedule
    if schedule is None or schedule.cron is None:
        return
    from prefect.client.schemas.schedules import CronSchedule  # only workflows with a cron pay the import

    try:
        CronSchedule(cron=schedule.cron, timezone=schedule.timezone)
    except ValidationError:
        problems.append(Problem(f"{schedule.cron!r} is not a valid cron expression", field="schedule.cron"))
    unknown = sorted(schedule.inputs.keys() - workflow.inputs.keys())
    if unknown:
        problems.append(Problem(f"unknown inputs {unknown}", field="schedule.inputs"))


def _topological_order(planned: dict[str, PlannedNode], problems: list[Problem]) -> list[str]:
    """Kahn's algorithm; on a cycle, report it as ``a -> b -> c -> a``."""
    indegree = {node_id: 0 for node_id in planned}
    downstream: dict[str, list[str]] = {node_id: [] for node_id in planned}
    for node_id, p in planned.items():
        for source in p.upstream:
            if source in planned:
                indegree[node_id] += 1
                downstream[source].append(node_id)
    queue = deque(node_id for node_id, degree in indegree.items() if degree == 0)
    order: list[str] = []
    while queue:
        node_id = queue.popleft()
        order.append(node_id)
        for child in downstream[node_id]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) < len(planned):
        remaining = {node_id for node_id, degree in indegree.items() if degree > 0}
        for cycle in _cycles(remaining, planned):
            problems.append(Problem(f"cycle: {' -> '.join(cycle)}", node=cycle[0], field="needs"))
    return order


def _cycles(remaining: set[str], planned: dict[str, PlannedNode]) -> list[list[str]]:
    """One cycle per strongly-connected knot among ``remaining`` (iterative DFS)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    cycles: list[list[str]] = []
    for start in sorted(remaining):
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, [s for s in planned[start].upstream if s in remaining])]
        path = [start]
        state[start] = 1
        while stack:
            node_id, children = stack[-1]
            if children:
                child = children.pop()
                if state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    cycles.append(list(reversed(cycle)))
                elif child not in state:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, [s for s in planned[child].upstream if s in remaining]))
            else:
                state[node_id] = 2
                path.pop()
                stack.pop()
    return cycles
