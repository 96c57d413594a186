"""The node registry: node types keyed by ``(type, version)``.

A node is a plain async function ``run(ctx, params) -> output`` registered with the
:func:`node` decorator. ``Params`` and ``Output`` come from the function's annotations: either
one pydantic model parameter after ``ctx``, or plain keyword parameters that become a model.
Registration fails loudly on a duplicate key; a lookup of an unknown type lists close matches.
"""

from __future__ import annotations

import builtins
import difflib
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, create_model

from nodes.context import NodeContext
from nodes.params import Params

NodeFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=NodeFn)

PortsFn = Callable[[Mapping[str, Any]], "list[str] | None"]
PortOfFn = Callable[[Any], str]


class UnknownNodeTypeError(LookupError):
    """No node is registered under that type (and version)."""

    def __init__(self, message: str, *, suggestions: list[str]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class DuplicateNodeTypeError(ValueError):
    """A node with the same ``(type, version)`` is already registered."""


@dataclass(frozen=True)
class NodeSpec:
    """Everything the planner and runner need to know about one node type version."""

    type: str
    version: int
    fn: NodeFn
    params_model: builtins.type[BaseModel]
    output_adapter: TypeAdapter[Any]
    output_schema: dict[str, Any]
    description: str
    credential: str | None = None
    #: The branch ports this node can choose, given its (literal) params; None if it has none.
    ports: PortsFn | None = None
    #: Which port a finished node took, given its output.
    port_of: PortOfFn | None = None
    #: The node receives its upstream outputs as ``ctx.upstream`` (joins such as core.merge).
    wants_upstream: bool = False
    #: For join nodes: "any" if the node runs when at least one incoming edge is taken, given
    #: its params; None (every other node) means every incoming edge must be taken.
    join: Callable[[Mapping[str, Any]], str] | None = None
    #: No I/O and no side effects: the output depends only on the params. The runner neither
    #: persists nor caches pure nodes (unless asked); a resumed run recomputes them.
    pure: bool = False
    #: Call ``fn(ctx, params_model)`` (True) or ``fn(ctx, **fields)`` (False).
    takes_model: bool = True
    field_names: tuple[str, ...] = field(default=())
    #: The installed distribution that registered the node (a plugin, or Switchboard itself)
    #: and its version; None for a node registered by the running program's own code.
    package: str | None = None
    package_version: str | None = None

    @property
    def origin(self) -> str:
        """Where the node comes from, for people: ``package version`` or the defining module."""
        if self.package:
            return f"{self.package} {self.package_version or ''}".strip()
        return f"{self.fn.__module__} (not a package)"

    @property
    def key(self) -> str:
        return f"{self.type}@{self.version}"

    @property
    def summary(self) -> str:
        """First line of the docstring: the one-line help text."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""

    def params_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()

    async def invoke(self, ctx: NodeContext, params: BaseModel) -> Any:
        """Call the node function and return its output as JSON-ready data."""
        if self.takes_model:
            result = await self.fn(ctx, params)
        else:
            result = await self.fn(ctx, **{name: getattr(params, name) for name in self.field_names})
        return self.output_adapter.dump_python(result, mode="json")


class Registry:
    """Node specs keyed by ``(type, version)``."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, int], NodeSpec] = {}
        self._latest: dict[str, NodeSpec] = {}
        #: The distribution whose nodes are being registered (:meth:`registering_for`).
        self._package: tuple[str, str | None] | None = None

    @contextmanager
    def registering_for(self, package: str, version: str | None) -> Iterator[None]:
        """Attribute the nodes registered inside to ``package`` at ``version`` (plugin loading)."""
        previous, self._package = self._package, (package, version)
        try:
            yield
        finally:
            self._package = previous

    def add(self, spec: NodeSpec) -> None:
        if self._package is not None and spec.package is None:
            spec = replace(spec, package=self._package[0], package_version=self._package[1])
        key = (spec.type, spec.version)
        if key in self._specs:
            existing = self._specs[key].fn
            raise DuplicateNodeTypeError(
                f"node type {spec.type!r} version {spec.version} is already registered "
                f"by {existing.__module__}.{existing.__qualname__}"
            )
        self._specs[key] = spec
        latest = self._latest.get(spec.type)
        if latest is None or spec.version > latest.version:
            self._latest[spec.type] = spec

    def get(self, type_: str, version: int | None = None) -> NodeSpec:
        """The spec for ``type_`` at ``version`` (latest when None); raises with close matches."""
        spec = self._latest.get(type_) if version is None else self._specs.get((type_, version))
        if spec is not None:
            return spec
        if type_ in self._latest:
            known = sorted(v for (t, v) in self._specs if t == type_)
            raise UnknownNodeTypeError(f"node type {type_!r} has no version {version} (known: {known})", suggestions=[])
        suggestions = difflib.get_close_matches(type_, list(self._latest), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        raise UnknownNodeTypeError(f"unknown node type {type_!r}{hint}", suggestions=suggestions)

    def __contains__(self, type_: object) -> bool:
        return type_ in self._latest

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.type, s.version)))

    def types(self) -> list[str]:
        return sorted(self._latest)


#: The process-wide registry that built-in and user nodes register into.
REGISTRY = Registry()


def _build_spec(
    fn: NodeFn,
    type_: str,
    version: int,
    credential: str | None,
    ports: PortsFn | None,
    port_of: PortOfFn | None,
    wants_upstream: bool,
    pure: bool,
    join: Callable[[Mapping[str, Any]], str] | None,
) -> NodeSpec:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"node {type_!r}: {fn.__qualname__} must be an async function")
    if not fn.__doc__ or not fn.__doc__.strip():
        raise TypeError(f"node {type_!r}: {fn.__qualname__} needs a docstring (it is the help text)")
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = list(inspect.signature(fn).parameters.values())
    if not parameters:
        raise TypeError(f"node {type_!r}: the first parameter must be the NodeContext")
    rest = parameters[1:]
    takes_model = False
    if len(rest) == 1:
        annotation = hints.get(rest[0].name)
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
            params_model: type[BaseModel] = annotation
            takes_model = True
    if not takes_model:
        fields: dict[str, Any] = {}
        for p in rest:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"node {type_!r}: *args/**kwargs cannot describe params")
            annotation = hints.get(p.name, Any)
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (annotation, default)
        model_name = "".join(part.title() for part in type_.replace("-", "_").replace(".", "_").split("_"))
        params_model = create_model(f"{model_name}Params", __base__=Params, **fields)
    output_type = hints.get("return", Any)
    adapter: TypeAdapter[Any] = TypeAdapter(output_type)
    try:
        output_schema = adapter.json_schema()
    except Exception:
        output_schema = {}
    return NodeSpec(
        type=type_,
        version=version,
        fn=fn,
        params_model=params_model,
        output_adapter=adapter,
        output_schema=output_schema,
        description=inspect.cleandoc(fn.__doc__),
        credential=credential,
        ports=ports,
        port_of=port_of,
        wants_upstream=wants_upstream,
        pure=pure,
        join=join,
        takes_model=takes_model,
        field_names=tuple(params_model.model_fields),
    )


def node(
    type: str,
    version: int = 1,
    credential: str | None = None,
    *,
    ports: PortsFn | None = None,
    port_of: PortOfFn | None = None,
    wants_upstream: bool = False,
    pure: bool = False,
    join: Callable[[Mapping[str, Any]], str] | None = None,
    registry: Registry | None = None,
) -> Callable[[F], F]:
    """Register an async function as node type ``type`` at ``version``.

    ``Params`` come from the annotations: a single pydantic model after ``ctx``, or plain
    keyword parameters (with defaults for optional ones). ``Output`` is the return annotation.
    ``credential`` names the provider kind whose credential the node needs. ``pure`` marks a
    node without I/O or side effects (its output depends only on its params); ``join`` gives
    a join node's mode ("all" or "any") from its params.
    """
    if not type or "." not in type:
        raise ValueError(f"node type {type!r} must look like 'family.operation'")

    def register(fn: F) -> F:
        spec = _build_spec(fn, type, version, credential, ports, port_of, wants_upstream, pure, join)
        (registry or REGISTRY).add(spec)
        return fn

    return register
