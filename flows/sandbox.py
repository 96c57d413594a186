"""The Jinja environment templates render in: Jinja's immutable sandbox, bounded in size and time.

Jinja's sandbox stops unsafe attribute access and mutation; it does not stop a template from
asking for a billion-character string. This environment routes every operation that can
build a large value through a check against the render's :class:`~flows.render_limits.RenderBudget`
*before* the value is built:

========================================  ===============================================
operation                                 bounded by
========================================  ===============================================
``*`` ``+`` on text and sequences         size of both sides (nested items counted)
``*`` ``**`` on integers                  bits of the result (``MAX_INT_BITS``)
``%`` on text, the ``format`` filter      each conversion's width, precision and argument
``str.format`` / ``format_map``           each field's spec and value, the running total
``center`` ``ljust`` ``rjust`` ``zfill``  the width
``expandtabs`` ``replace`` ``translate``  tabs x size, matches x growth, length x longest
``join`` (filter and method)              parts and separators, counted as they come
``int.to_bytes``                          the length
literals ``[..]`` ``(..)`` ``{..}``       the size of the new container (nested counted)
``~``                                     the parts, before they are joined
text collected by ``set`` blocks,         each buffer's length as it grows
macros, ``call`` and ``filter`` blocks
``{{ x }}`` in text                       the size of ``x`` before it becomes text
filters with a count or width             ``batch`` ``slice`` ``indent`` ``wordwrap``
                                          ``center`` ``round`` (precision)
slow filters                              input length (``wordwrap``, ``urlize``, ``pprint``)
every filter and call                     the size of the result
``range()``                               its length
``for`` loops, operators, calls           the clock (``RenderLimits.timeout_seconds``)
macros and recursive loops                call depth (``MAX_CALL_DEPTH``)
========================================  ===============================================

The checks live in generated code (a code generator that wraps literals, ``~``, loop
iterables and block buffers) and in the environment's hooks (``call_binop``, ``call``,
``getattr``, ``wrap_str_format``, ``finalize``, the filter table). Constant folding is off:
Jinja would otherwise run filters while compiling, outside any render and its clock.
"""

from __future__ import annotations

import functools
import json
import pprint
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_environment, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

from flows import bounded_text
from flows.render_limits import (
    MAX_CALL_DEPTH,
    MAX_EXPONENT,
    MAX_INT_BITS,
    ExpressionError,
    RenderBudget,
    budget,
)

#: Filters that are slow per character (textwrap, urlize's regexes, pprint) take less input,
#: so that no single call runs long past the render's clock (measured: ~1 s at these sizes).
SLOW_FILTER_INPUT = {"wordwrap": 50_000, "urlize": 200_000, "pprint": 200_000}
#: ``round`` to more digits than this is refused (``10 ** precision`` is computed).
MAX_ROUND_PRECISION = 1_000
#: ``tojson(indent=...)`` wider than this is refused (indentation repeats on every line).
MAX_JSON_INDENT = 16


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, emitting the checks of values the template itself builds."""

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.sb_value(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.sb_value(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target: `for a, b in ...`, `set a, b = ...`
            super().visit_Tuple(node, frame)
            return
        self.write("environment.sb_value(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.sb_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Jinja allows no custom node types: the iterable becomes `environment.sb_iter(...)`.
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("sb_iter", lineno=node.lineno), [node.iter], [], None, None, lineno=node.lineno
        )
        super().visit_For(node, frame)

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.sb_buffer()")


class _TextBuffer(list[str]):
    """Where a block collects its text (``set`` blocks, macros, ``call``/``filter`` blocks):
    refuses to grow past the size limit, so the join at the end of the block is bounded."""

    __slots__ = ("budget", "chars")

    def __init__(self, budget: RenderBudget) -> None:
        super().__init__()
        self.budget = budget
        self.chars = 0

    def append(self, text: str) -> None:
        self._grow(len(text))
        super().append(text)

    def extend(self, texts: Iterable[str]) -> None:
        texts = tuple(texts)
        self._grow(sum(map(len, texts)))
        super().extend(texts)

    def _grow(self, chars: int) -> None:
        self.chars += chars
        self.budget.check_size(self.chars, "the text of a block")
        self.budget.tick()


class _BoundedLoop:
    """A loop's iterable that reads the clock as the loop runs (``len`` for ``loop.length``)."""

    __slots__ = ("budget", "items")

    def __init__(self, budget: RenderBudget, iterable: Iterable[Any]) -> None:
        self.budget = budget
        self.items = iterable

    def __iter__(self) -> Iterator[Any]:
        check_time = self.budget.check_time
        for step, item in enumerate(self.items, 1):
            if not step & 63:
                check_time()
            yield item

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]  # TypeError: LoopContext counts instead


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with size and time bounds on every operation that can blow up."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    # --- hooks the generated code calls -------------------------------------------------------

    def sb_value(self, value: Any) -> Any:
        """A literal the template builds: ``[...]``, ``(...)``, ``{...}``."""
        return budget().check(value, "a literal")

    def sb_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ c``: each part made text (sized first), the total counted before joining."""
        current = budget()
        return bounded_text.joined(current, "", parts, convert=True)

    def sb_iter(self, iterable: Any) -> _BoundedLoop:
        """A ``for`` loop's iterable (a call: Jinja allows no custom node types)."""
        return _BoundedLoop(budget(), iterable)

    def sb_buffer(self) -> _TextBuffer:
        return _TextBuffer(budget())

    # --- the sandbox's hooks ------------------------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        current = budget()
        current.tick()
        if operator == "%":
            if isinstance(left, str | bytes):
                return bounded_text.percent_format(current, left, right)
            return left % right
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise ExpressionError(f"exponent {right} is larger than {MAX_EXPONENT}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
                raise ExpressionError(f"the result of {operator!r} would exceed {MAX_INT_BITS} bits")
            return left**right
        if operator == "+":
            if _is_sequence(left) and _is_sequence(right):
                current.check_size(current.size(left) + current.size(right), "the joined value")
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise ExpressionError(f"the result of {operator!r} would exceed {MAX_INT_BITS} bits")
            return left * right
        for seq, times in ((left, right), (right, left)):
            if _is_sequence(seq) and isinstance(times, int):
                current.check_size(current.size(seq) * max(times, 0), f"repeating a value {times} times")
        return left * right

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget().tick()
        # Data first: `nodes.x.output.items` is the "items" key, not dict.items.
        if isinstance(obj, dict):
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., Any] | None:
        """Jinja calls this on every attribute a template reads: the place to hand out bounded
        versions of the methods that can build large values (``str.format`` among them)."""
        return bounded_text.bounded_method(self, budget(), value)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        current = budget()
        current.check_time()
        recursive = isinstance(__obj, Macro | LoopContext)
        if recursive:
            if current.calls >= MAX_CALL_DEPTH:
                raise ExpressionError(f"macros or recursive loops call each other deeper than {MAX_CALL_DEPTH} levels")
            if isinstance(__obj, LoopContext) and args:
                args = (__self.sb_iter(args[0]), *args[1:])
            current.calls += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            if recursive:
                current.calls -= 1
        return current.check(result, "the result of a call")


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


# --- filters ------------------------------------------------------------------------------------


def _checked(name: str, fn: Callable[..., Any], precheck: Callable[..., None] | None = None) -> Callable[..., Any]:
    """``fn`` as a filter whose arguments are checked first and whose result is sized after."""
    injected = _PassArg.from_obj(fn) is not None
    input_limit = SLOW_FILTER_INPUT.get(name)

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        current = budget()
        current.tick()
        plain = args[1:] if injected else args
        if input_limit is not None and plain and current.size(plain[0]) > input_limit:
            raise ExpressionError(f"the {name} filter takes at most {input_limit} characters or items")
        if precheck is not None:
            precheck(current, *plain, **kwargs)
        return current.check(fn(*args, **kwargs), f"the result of the {name} filter")

    return bounded


def _center(b: RenderBudget, value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        b.check_size(width, "the centered text")


def _indent(b: RenderBudget, s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    indentation = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = s if isinstance(s, str) else ""
    b.check_size(len(text) + indentation * (text.count("\n") + 2), "the indented text")


def _wordwrap(
    b: RenderBudget, s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any, **kw: Any
) -> None:
    wrapstring = kw.get("wrapstring", wrapstring)
    width = kw.get("width", width)
    if wrapstring is None:
        wrapstring = "\n"
    if isinstance(s, str) and isinstance(width, int) and isinstance(wrapstring, str):
        lines = len(s) // max(width, 1) + s.count("\n") + 1
        b.check_size(len(s) + lines * len(wrapstring), "the wrapped text")


def _replace_filter(b: RenderBudget, s: Any, old: Any = "", new: Any = "", count: Any = None, **__: Any) -> None:
    size = bounded_text.replaced_size(str(s) if not isinstance(s, str) else s, old, new, -1 if count is None else count)
    if size is not None:
        b.check_size(size, "the replaced text")


def _count_arg(what: str, position: int, keyword: str) -> Callable[..., None]:
    def check(b: RenderBudget, *args: Any, **kwargs: Any) -> None:
        count = kwargs.get(keyword, args[position] if len(args) > position else None)
        if isinstance(count, int):
            b.check_size(count, what)

    return check


def _round(b: RenderBudget, value: Any, precision: Any = 0, *_: Any, **kw: Any) -> None:
    precision = kw.get("precision", precision)
    if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
        raise ExpressionError(f"round to {precision} digits: the precision is at most {MAX_ROUND_PRECISION}")


@pass_environment
def _join(environment: Any, value: Iterable[Any], d: Any = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    return str(bounded_text.joined(budget(), str(d), value, convert=True))


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in iterable:
        total = environment.call_binop(None, "+", total, item)
    return total


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise ExpressionError("format takes positional or keyword arguments, not both")
    return str(bounded_text.percent_format(budget(), str(value), kwargs or args))


def _string(value: Any) -> str:
    return bounded_text.text_of(budget(), value, "the text of the value")


def _pprint(value: Any) -> str:
    budget().check(value, "the value")
    return pprint.pformat(value)


def tojson(value: Any, indent: int | None = None) -> str:
    """JSON text without HTML escaping; the value is sized before it is serialised."""
    current = budget()
    current.check(value, "the value", strict=True)
    if indent is not None and (not isinstance(indent, int) or not 0 <= indent <= MAX_JSON_INDENT):
        raise ExpressionError(f"tojson indent must be a whole number from 0 to {MAX_JSON_INDENT}")
    return bounded_text.text_of(
        current, value, "the JSON text", lambda v: json.dumps(v, ensure_ascii=False, indent=indent, default=str)
    )


def fromjson(value: str) -> Any:
    """Parse JSON text (bounded in size, depth and number length: ``nodes.safe_json``)."""
    # Imported here: importing the nodes package registers every node family (~3 s), which
    # rendering a template without fromjson should not pay.
    from nodes import safe_json

    try:
        return safe_json.loads(value, what="fromjson input", max_bytes=budget().max_size)
    except safe_json.UnsafeJSONError as exc:
        raise ExpressionError(f"fromjson: {exc}") from exc


def bounded_range(*args: int) -> Iterator[int]:
    """``range()``, at most the size limit long (refused when called, not when first read),
    reading the clock as it goes."""
    current = budget()
    span = range(*args)
    if len(span) > current.max_size:
        raise ExpressionError(f"range() of {len(span)} items exceeds {current.max_size}")
    return _BoundedLoop(current, span).__iter__()


_PRECHECKS: dict[str, Callable[..., None]] = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace_filter,
    "batch": _count_arg("a batch", 1, "linecount"),
    "slice": _count_arg("the slices", 1, "slices"),
    "round": _round,
}
_REPLACED: dict[str, Callable[..., Any]] = {
    "join": _join,
    "sum": _sum,
    "format": _format,
    "string": _string,
    "pprint": _pprint,
    "tojson": tojson,
    "fromjson": fromjson,
}


def _filters() -> dict[str, Callable[..., Any]]:
    table = {**FILTERS, **_REPLACED}
    return {name: _checked(name, fn, _PRECHECKS.get(name)) for name, fn in table.items()}


_PLAIN = frozenset({str, int, float, bool, type(None)})


@pass_eval_context
def _finalize(eval_ctx: Any, value: Any) -> Any:
    """Every ``{{ x }}`` in text: ``x`` is sized before Jinja turns it into text."""
    if type(value) in _PLAIN and (type(value) is not str or len(value) < 4096):
        return value  # the common case, bounded anyway by the rendered text's length check
    return budget().check(value, "the output")


def make_environment() -> BoundedEnvironment:
    """The one environment templates are parsed, compiled and rendered with."""
    env = BoundedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        optimized=False,
        finalize=_finalize,
    )
    # Drop the default globals (cycler, joiner, lipsum, namespace, dict): none is needed and
    # each is surface. range stays, bounded.
    env.globals.clear()
    env.globals["range"] = bounded_range
    env.filters.clear()
    env.filters.update(_filters())
    return env
