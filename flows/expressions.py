"""Template expressions: Jinja2 in an immutable sandbox with strict undefined.

A string containing ``{{`` or ``{%`` is a template. A value that is exactly one ``{{ ... }}``
keeps its native type (int, list, dict, ...); mixed text renders to a string. The names in
scope are ``inputs``, ``nodes`` (``nodes.<id>.output`` / ``.status``), ``item``, ``index``,
``run`` and ``env`` (an operator-chosen allow-list). Secrets are never in scope.

Templates are checked twice: statically when a workflow is planned (length and nesting
before Jinja parses them, ``flows.template_shape``; syntax, unknown names, any attribute or
key starting with ``_``), and by the sandbox while rendering (``flows.sandbox``). A render
is bounded in the size of every value it builds, nested items counted and checked before the
value is allocated, and in time (:class:`RenderLimits`); whatever goes wrong, including
running out of memory or stack, it fails with an :class:`ExpressionError` that names the
limit and the template.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.lexer import TOKEN_BLOCK_BEGIN, TOKEN_DATA, TOKEN_VARIABLE_BEGIN

from flows import template_shape
from flows.render_limits import (
    DEFAULT_LIMITS,
    MAX_EXPONENT,
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_SEQUENCE_ITEMS,
    MAX_VALUE_DEPTH,
    RENDER_TIMEOUT_SECONDS,
    ExpressionError,
    RenderLimits,
    rendering,
)
from flows.sandbox import make_environment
from flows.template_shape import excerpt

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_EXPONENT",
    "MAX_INT_BITS",
    "MAX_OUTPUT_CHARS",
    "MAX_SEQUENCE_ITEMS",
    "RENDER_TIMEOUT_SECONDS",
    "SCOPE_NAMES",
    "Compiled",
    "ExpressionError",
    "RenderLimits",
    "Template",
    "compile_value",
    "is_template",
    "parse",
    "render_value",
]

#: The names a template may read; anything else is an error at validation time.
SCOPE_NAMES = frozenset({"inputs", "nodes", "item", "index", "run", "env"})
_BUILTIN_NAMES = frozenset({"range", "loop", "caller", "varargs", "kwargs"})


def is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


ENV = make_environment()


@dataclass(frozen=True)
class Template:
    """One parsed template string: what it references and whether it renders natively."""

    source: str
    native: bool
    refs: frozenset[str]
    expression: str | None = None
    #: The scope names (inputs, nodes, item, ...) the template reads.
    names: frozenset[str] = frozenset()
    #: The workflow inputs read as ``inputs.<name>``.
    inputs: frozenset[str] = frozenset()

    def render(self, context: Mapping[str, Any], *, limits: RenderLimits | None = None) -> Any:
        """Render against ``context``, bounded by ``limits`` (or by the render already running)."""
        try:
            with rendering(limits) as budget:
                if self.native:
                    assert self.expression is not None
                    value = _compile_expression(self.expression)(**context)
                    if isinstance(value, StrictUndefined):
                        str(value)  # raises UndefinedError with the missing name
                    if isinstance(value, list | tuple | dict) and budget.measured(value) is None:
                        # Not built by a checked operation: data passed through from the scope
                        # (walking it on every render would cost ~1 µs an item).
                        budget.check_size(len(value), "the value")
                        return value
                    return budget.check(value, "the value", strict=True)
                out: list[str] = []
                total = 0
                for chunk in _compile_template(self.source).generate(**context):
                    total += len(chunk)
                    budget.check_size(total, "the rendered text")
                    out.append(chunk)
                    budget.tick()
                return "".join(out)
        except ExpressionError as exc:
            raise ExpressionError(f"{exc.message} (in {excerpt(self.source)})") from exc
        except UndefinedError as exc:
            raise ExpressionError(f"{exc} (in {excerpt(self.source)})") from exc
        except SecurityError as exc:
            raise ExpressionError(f"unsafe expression refused: {exc} (in {excerpt(self.source)})") from exc
        except TemplateError as exc:
            raise ExpressionError(f"{exc} (in {excerpt(self.source)})") from exc
        except MemoryError as exc:  # a bound missed: fail the node, never the run
            raise ExpressionError(f"template ran out of memory (in {excerpt(self.source)})") from exc
        except RecursionError as exc:
            raise ExpressionError(f"template recursed too deeply (in {excerpt(self.source)})") from exc
        except Exception as exc:  # a filter or method given the wrong type of value, mostly
            raise ExpressionError(f"{type(exc).__name__}: {exc} (in {excerpt(self.source)})") from exc


@functools.lru_cache(maxsize=4096)
def _compile_template(source: str) -> Any:
    return ENV.from_string(source)


@functools.lru_cache(maxsize=4096)
def _compile_expression(expression: str) -> Any:
    return ENV.compile_expression(expression, undefined_to_none=False)


def _native_expression(source: str) -> str | None:
    """The inner expression if ``source`` is exactly one ``{{ ... }}``, else None."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        return None
    begins = 0
    for _, kind, value in ENV.lex(stripped):
        if kind == TOKEN_VARIABLE_BEGIN:
            begins += 1
            if begins > 1:
                return None
        elif kind == TOKEN_BLOCK_BEGIN or (kind == TOKEN_DATA and value.strip()):
            return None
    inner = stripped[2:-2]
    # Whitespace-control markers ({{- ... -}}, {{+ ... +}}) are not part of the expression.
    if inner[:1] in ("-", "+"):
        inner = inner[1:]
    if inner[-1:] in ("-", "+"):
        inner = inner[:-1]
    return inner.strip()


def _check_ast(
    ast: nodes.Template, source: str, scope: frozenset[str] = SCOPE_NAMES
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Refuse unknown names (any outside ``scope``) and private attributes.

    Returns the node ids referenced, the scope names read and the inputs read.
    """
    everything = template_shape.walk(ast, source)
    stored: set[str] = set()
    wrapped: set[int] = set()  # Name nodes that are the target of an attribute or item lookup
    for n in everything:
        if isinstance(n, nodes.Name) and n.ctx in ("store", "param"):
            stored.add(n.name)
        elif isinstance(n, nodes.Macro):
            stored.update(arg.name for arg in n.args)
        elif isinstance(n, nodes.Getattr | nodes.Getitem):
            wrapped.add(id(n.node))
    refs: set[str] = set()
    names: set[str] = set()
    inputs: set[str] = set()
    for n in everything:
        if isinstance(n, nodes.Filter | nodes.Test):
            kind, known = ("filter", ENV.filters) if isinstance(n, nodes.Filter) else ("test", ENV.tests)
            if n.name not in known:
                close = difflib.get_close_matches(n.name, list(known), n=3)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise ExpressionError(f"unknown {kind} {n.name!r} in {excerpt(source)}{hint}")
        if isinstance(n, nodes.Name):
            if n.ctx != "load" or n.name in stored:
                continue
            if n.name not in scope | _BUILTIN_NAMES:
                raise ExpressionError(
                    f"name {n.name!r} is not available in expressions "
                    f"(use {', '.join(sorted(scope))}) in {excerpt(source)}"
                )
            if n.name in scope:
                names.add(n.name)
            if n.name == "nodes" and id(n) not in wrapped:
                raise ExpressionError(
                    f"use nodes.<id> (a literal node id) so the dependency is known; bare `nodes` in {excerpt(source)}"
                )
        elif isinstance(n, nodes.Getattr | nodes.Getitem):
            if isinstance(n, nodes.Getattr):
                key: object = n.attr
                if n.attr.startswith("_"):
                    raise ExpressionError(f"attribute {n.attr!r} is not allowed in {excerpt(source)}")
            else:
                key = n.arg.value if isinstance(n.arg, nodes.Const) else None
                if isinstance(key, str) and key.startswith("_"):
                    raise ExpressionError(f"key {key!r} is not allowed in {excerpt(source)}")
            target = n.node.name if isinstance(n.node, nodes.Name) and n.node.name not in stored else None
            if target == "nodes":
                if not isinstance(key, str):
                    raise ExpressionError(
                        f"nodes[...] needs a literal node id so the dependency is known, in {excerpt(source)}"
                    )
                refs.add(key)
            elif target == "inputs" and isinstance(key, str):
                inputs.add(key)
    return frozenset(refs), frozenset(names), frozenset(inputs)


def _native_from_ast(ast: nodes.Template, source: str) -> str | None:
    """The inner expression if the template is exactly one ``{{ ... }}`` (whitespace aside)."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts = ast.body[0].nodes
    expressions = [p for p in parts if not isinstance(p, nodes.TemplateData)]
    if len(expressions) != 1 or any(isinstance(p, nodes.TemplateData) and p.data.strip() for p in parts):
        return None
    return _native_expression(source)


# Most templates only substitute paths: `Hello {{ inputs.name }}`, `{{ nodes.fetch.output.items[0] }}`.
# Those are recognised with one regex instead of Jinja's parser (the planner's hot path);
# anything else — filters, operators, blocks, private names — takes the full parse below.
_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_PATH = rf"({_IDENT})((?:\.{_IDENT}|\[\d+\]|\['[A-Za-z0-9][A-Za-z0-9_ -]*'\])*)"
_FILTERS = r"((?:\s*\|\s*[a-z_]+)*)"
_SIMPLE_EXPR = re.compile(r"\{\{-?\s*" + _PATH + _FILTERS + r"\s*-?\}\}")
_SEGMENT = re.compile(rf"\.({_IDENT})|\[(\d+)\]|\['([^']*)'\]")
_JINJA_MARKERS = ("{{", "{%", "{#", "}}", "%}", "#}")


def _parse_simple(source: str, scope: frozenset[str] = SCOPE_NAMES) -> Template | None:
    """The Template for a path-substitution-only string, or None if it needs the full parser."""
    refs: set[str] = set()
    names: set[str] = set()
    inputs: set[str] = set()
    count = 0
    for match in _SIMPLE_EXPR.finditer(source):
        name, rest, filters = match.group(1), match.group(2), match.group(3)
        if name not in scope:
            return None
        if rest.count(".") + rest.count("[") + filters.count("|") > template_shape.MAX_TREE_DEPTH // 2:
            return None  # a long chain: the full parse measures its depth
        if filters and any(f.strip() not in ENV.filters for f in filters.split("|")[1:]):
            return None
        names.add(name)
        first = _SEGMENT.match(rest)
        key = (first.group(1) or first.group(3)) if first else None
        if name == "nodes":
            if key is None:
                return None  # bare `nodes` or nodes[0]: let the full check explain
            refs.add(key)
        elif name == "inputs" and key is not None:
            inputs.add(key)
        count += 1
    remainder = _SIMPLE_EXPR.sub("", source)
    if count == 0 or any(marker in remainder for marker in _JINJA_MARKERS):
        return None
    whole = _SIMPLE_EXPR.fullmatch(source.strip())
    expression = whole.group(1) + whole.group(2) + whole.group(3) if whole else None
    return Template(
        source=source,
        native=expression is not None,
        refs=frozenset(refs),
        expression=expression,
        names=frozenset(names),
        inputs=frozenset(inputs),
    )


@functools.lru_cache(maxsize=16384)
def parse(source: str, scope: frozenset[str] = SCOPE_NAMES) -> Template:
    """Parse and check one template string (cached: identical strings parse once).

    ``scope`` is the names it may read: a node's (:data:`SCOPE_NAMES`) unless told, e.g. a
    trigger's ``event`` and ``headers`` (:mod:`flows.triggers`).
    """
    template_shape.check_length(source)
    simple = _parse_simple(source, scope)
    if simple is not None:
        return simple
    try:
        tokens = template_shape.tokens_of(ENV, source)
        template_shape.check_nesting(tokens, source)
        ast = template_shape.parse_tokens(ENV, source, tokens)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"template syntax error: {exc.message} (line {exc.lineno}) in {excerpt(source)}") from exc
    except RecursionError as exc:  # the nesting check leaves far more room than this needs
        raise ExpressionError(f"template nests too deeply in {excerpt(source)}") from exc
    refs, names, inputs = _check_ast(ast, source, scope)
    expression = _native_from_ast(ast, source)
    return Template(
        source=source, native=expression is not None, refs=refs, expression=expression, names=names, inputs=inputs
    )


@dataclass(frozen=True)
class Compiled:
    """A param value with its templates parsed: render it to get the concrete value."""

    value: Any
    refs: frozenset[str]
    templated: bool
    names: frozenset[str] = frozenset()
    inputs: frozenset[str] = frozenset()

    def render(self, context: Mapping[str, Any], *, limits: RenderLimits | None = None) -> Any:
        """The value with every template rendered; all of them share one clock (``limits``)."""
        if not self.templated:
            return self.value
        with rendering(limits):
            return _render(self.value, context)


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value


def compile_value(value: Any, path: str = "", *, scope: frozenset[str] = SCOPE_NAMES) -> Compiled:
    """Parse every template inside ``value`` (strings, nested in dicts and lists).

    ``scope``: the names its templates may read (as for :func:`parse`). Raises
    :class:`ExpressionError` whose message starts with the path of the bad string.
    """
    refs: set[str] = set()
    names: set[str] = set()
    inputs: set[str] = set()
    templated = False

    def walk(v: Any, where: str, depth: int = 0) -> Any:
        nonlocal templated
        if depth > MAX_VALUE_DEPTH:
            raise ExpressionError(f"values nest deeper than {MAX_VALUE_DEPTH} levels", path=where or None)
        if isinstance(v, str):
            if not is_template(v):
                return v
            try:
                template = parse(v, scope)
            except ExpressionError as exc:
                raise ExpressionError(exc.message, path=where or None) from exc
            templated = True
            refs.update(template.refs)
            names.update(template.names)
            inputs.update(template.inputs)
            return template
        if isinstance(v, dict):
            return {k: walk(item, f"{where}.{k}" if where else str(k), depth + 1) for k, item in v.items()}
        if isinstance(v, list):
            return [walk(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v)]
        return v

    compiled = walk(value, path)
    return Compiled(
        value=compiled, refs=frozenset(refs), templated=templated, names=frozenset(names), inputs=frozenset(inputs)
    )


def render_value(value: Any, context: Mapping[str, Any], *, limits: RenderLimits | None = None) -> Any:
    """Parse and render ``value`` in one step (for ad-hoc use; the runner pre-parses)."""
    return compile_value(value).render(context, limits=limits)
