"""Template expressions: Jinja2 in an immutable sandbox with strict undefined.

A string containing ``{{`` or ``{%`` is a template. A value that is exactly one ``{{ ... }}``
keeps its native type (int, list, dict, ...); mixed text renders to a string. The names in
scope are ``inputs``, ``nodes`` (``nodes.<id>.output`` / ``.status``), ``item``, ``index``,
``run`` and ``env`` (an operator-chosen allow-list). Secrets are never in scope.

Templates are checked twice: statically when a workflow is planned (syntax, unknown names,
any attribute or key starting with ``_``), and by the sandbox while rendering. Rendering is
bounded in output size, in the size of values built with ``*`` and ``**``, and in time.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.lexer import TOKEN_BLOCK_BEGIN, TOKEN_DATA, TOKEN_VARIABLE_BEGIN
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: The names a template may read; anything else is an error at validation time.
SCOPE_NAMES = frozenset({"inputs", "nodes", "item", "index", "run", "env"})
_BUILTIN_NAMES = frozenset({"range", "loop", "caller", "varargs", "kwargs"})

MAX_OUTPUT_CHARS = 1_000_000
MAX_SEQUENCE_ITEMS = 1_000_000
MAX_EXPONENT = 256
MAX_INT_BITS = 65_536
RENDER_TIMEOUT_SECONDS = 2.0

_deadline: ContextVar[float] = ContextVar("switchboard_render_deadline", default=math.inf)


class ExpressionError(ValueError):
    """A template is invalid, unsafe, or failed to render.

    ``path`` names the string inside a value (``values.greeting``, ``[2]``) when known.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


def is_template(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check_deadline() -> None:
    if time.monotonic() > _deadline.get():
        raise ExpressionError(f"template took longer than {RENDER_TIMEOUT_SECONDS:g}s to render")


def _bounded_range(*args: int) -> Iterator[int]:
    span = range(*args)
    if len(span) > MAX_SEQUENCE_ITEMS:
        raise ExpressionError(f"range() of {len(span)} items exceeds {MAX_SEQUENCE_ITEMS}")
    for i, value in enumerate(span):
        if i % 256 == 0:
            _check_deadline()
        yield value


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _fromjson(value: str) -> Any:
    if len(value) > MAX_OUTPUT_CHARS:
        raise ExpressionError(f"fromjson input longer than {MAX_OUTPUT_CHARS} characters")
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"fromjson: not valid JSON: {exc}") from exc


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with size and time bounds on the operations that can blow up."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise ExpressionError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
                raise ExpressionError(f"the result of {operator!r} would exceed {MAX_INT_BITS} bits")
            return left**right
        if operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes and sum(s for s in sizes if s is not None) > MAX_SEQUENCE_ITEMS:
                raise ExpressionError(f"joining values longer than {MAX_SEQUENCE_ITEMS} items")
            return left + right
        for seq, times in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(times, int) and size * times > MAX_SEQUENCE_ITEMS:
                raise ExpressionError(f"repeating a value {times} times exceeds {MAX_SEQUENCE_ITEMS} items")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data first: `nodes.x.output.items` is the "items" key, not dict.items.
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)


def _make_env() -> _Environment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # Drop the default globals (cycler, joiner, lipsum, namespace, dict): none is needed and
    # each is surface. range stays, bounded.
    env.globals.clear()
    env.globals["range"] = _bounded_range
    env.filters["tojson"] = _tojson
    env.filters["fromjson"] = _fromjson
    return env


ENV = _make_env()


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

    def render(self, context: Mapping[str, Any]) -> Any:
        """Render against ``context`` (bounded in time and size)."""
        token = _deadline.set(time.monotonic() + RENDER_TIMEOUT_SECONDS)
        try:
            if self.native:
                assert self.expression is not None
                value = _compile_expression(self.expression)(**context)
                if isinstance(value, StrictUndefined):
                    str(value)  # raises UndefinedError with the missing name
                size = _size(value)
                if size is not None and size > (MAX_OUTPUT_CHARS if isinstance(value, str) else MAX_SEQUENCE_ITEMS):
                    raise ExpressionError(f"the value is larger than {MAX_OUTPUT_CHARS} characters or items")
                return value
            out: list[str] = []
            total = 0
            for chunk in _compile_template(self.source).generate(**context):
                total += len(chunk)
                if total > MAX_OUTPUT_CHARS:
                    raise ExpressionError(f"rendered text is longer than {MAX_OUTPUT_CHARS} characters")
                out.append(chunk)
                _check_deadline()
            return "".join(out)
        except ExpressionError:
            raise
        except UndefinedError as exc:
            raise ExpressionError(f"{exc} (in {self.source!r})") from exc
        except SecurityError as exc:
            raise ExpressionError(f"unsafe expression refused: {exc}") from exc
        except TemplateError as exc:
            raise ExpressionError(f"{exc} (in {self.source!r})") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc} (in {self.source!r})") from exc
        finally:
            _deadline.reset(token)


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


def _walk(root: nodes.Node) -> list[nodes.Node]:
    """Every node of a template AST, in one pass."""
    found: list[nodes.Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.iter_child_nodes())
    return found


def _check_ast(ast: nodes.Template, source: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Refuse unknown names and private attributes.

    Returns the node ids referenced, the scope names read and the inputs read.
    """
    everything = _walk(ast)
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
                raise ExpressionError(f"unknown {kind} {n.name!r} in {source!r}{hint}")
        if isinstance(n, nodes.Name):
            if n.ctx != "load" or n.name in stored:
                continue
            if n.name not in SCOPE_NAMES | _BUILTIN_NAMES:
                raise ExpressionError(
                    f"name {n.name!r} is not available in expressions "
                    f"(use {', '.join(sorted(SCOPE_NAMES))}) in {source!r}"
                )
            if n.name in SCOPE_NAMES:
                names.add(n.name)
            if n.name == "nodes" and id(n) not in wrapped:
                raise ExpressionError(
                    f"use nodes.<id> (a literal node id) so the dependency is known; bare `nodes` in {source!r}"
                )
        elif isinstance(n, nodes.Getattr | nodes.Getitem):
            if isinstance(n, nodes.Getattr):
                key: object = n.attr
                if n.attr.startswith("_"):
                    raise ExpressionError(f"attribute {n.attr!r} is not allowed in {source!r}")
            else:
                key = n.arg.value if isinstance(n.arg, nodes.Const) else None
                if isinstance(key, str) and key.startswith("_"):
                    raise ExpressionError(f"key {key!r} is not allowed in {source!r}")
            target = n.node.name if isinstance(n.node, nodes.Name) and n.node.name not in stored else None
            if target == "nodes":
                if not isinstance(key, str):
                    raise ExpressionError(
                        f"nodes[...] needs a literal node id so the dependency is known, in {source!r}"
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


def _parse_simple(source: str) -> Template | None:
    """The Template for a path-substitution-only string, or None if it needs the full parser."""
    refs: set[str] = set()
    names: set[str] = set()
    inputs: set[str] = set()
    count = 0
    for match in _SIMPLE_EXPR.finditer(source):
        name, rest, filters = match.group(1), match.group(2), match.group(3)
        if name not in SCOPE_NAMES:
            return None
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
def parse(source: str) -> Template:
    """Parse and check one template string (cached: identical strings parse once)."""
    simple = _parse_simple(source)
    if simple is not None:
        return simple
    try:
        ast = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"template syntax error: {exc.message} (line {exc.lineno}) in {source!r}") from exc
    refs, names, inputs = _check_ast(ast, source)
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

    def render(self, context: Mapping[str, Any]) -> Any:
        return _render(self.value, context) if self.templated else self.value


def _render(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value


def compile_value(value: Any, path: str = "") -> Compiled:
    """Parse every template inside ``value`` (strings, nested in dicts and lists).

    Raises :class:`ExpressionError` whose message starts with the path of the bad string.
    """
    refs: set[str] = set()
    names: set[str] = set()
    inputs: set[str] = set()
    templated = False

    def walk(v: Any, where: str) -> Any:
        nonlocal templated
        if isinstance(v, str):
            if not is_template(v):
                return v
            try:
                template = parse(v)
            except ExpressionError as exc:
                raise ExpressionError(exc.message, path=where or None) from exc
            templated = True
            refs.update(template.refs)
            names.update(template.names)
            inputs.update(template.inputs)
            return template
        if isinstance(v, dict):
            return {k: walk(item, f"{where}.{k}" if where else str(k)) for k, item in v.items()}
        if isinstance(v, list):
            return [walk(item, f"{where}[{i}]") for i, item in enumerate(v)]
        return v

    compiled = walk(value, path)
    return Compiled(
        value=compiled, refs=frozenset(refs), templated=templated, names=frozenset(names), inputs=frozenset(inputs)
    )


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Parse and render ``value`` in one step (for ad-hoc use; the runner pre-parses)."""
    return compile_value(value).render(context)
