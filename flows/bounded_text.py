"""Text operations whose result size is known from their inputs, checked before they run.

``'%999999999d' % 1``, ``'{:>999999999}'.format(1)``, ``'a'.center(10**9)``, a join of a
million parts or ``'{0}' * 10000`` formatted with a long text each allocate far more than
their inputs. Each function here works out how large the result would be from the width,
precision, repeat count or parts *first* and raises :class:`ExpressionError` when that is
over the render's limit, so nothing is allocated for a result that would be refused.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2.sandbox import SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from flows.render_limits import ExpressionError, RenderBudget

# One printf conversion: %[(key)][flags][width][.precision][length]type
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?(?P<type>.?)", re.S
)
_DIGITS = re.compile(r"\d+")
#: A float in f-notation has at most this many digits before the point (1.8e308).
_FLOAT_DIGITS = 330
#: Digits a width or precision may have at all (more is refused without converting them).
_MAX_NUMBER_DIGITS = 9
_PLAIN = frozenset({str, int, float, bool, type(None)})


def text_of(budget: RenderBudget, value: Any, what: str, convert: Callable[[Any], str] = str) -> str:
    """``convert(value)`` (str, repr or ascii), its input measured first and its length checked.

    The text of a value is at most ~14 characters per character or item the budget counts
    (quotes, separators, escapes), so measuring first bounds what the conversion allocates.
    """
    kind = type(value)
    if convert is str and kind in _PLAIN:
        if kind is str:
            budget.check_size(len(value), what)
            return value
        return str(value)  # a number's text is short (Python refuses ints over 4300 digits)
    budget.check(value, what)
    text = convert(value)
    budget.check_size(len(text), what)
    return text


def _number(budget: RenderBudget, digits: str, what: str) -> int:
    if len(digits) > _MAX_NUMBER_DIGITS:
        raise ExpressionError(f"{what} would hold more than {budget.max_size} characters or items")
    number = int(digits)
    budget.check_size(number, what)
    return number


def _star(budget: RenderBudget, value: Any, what: str) -> int:
    if not isinstance(value, int):
        raise ExpressionError(f"{what}: * wants an integer, got {type(value).__name__}")
    budget.check_size(abs(value), what)
    return abs(value)


def percent_format(budget: RenderBudget, template: Any, args: Any) -> Any:
    """``template % args`` (printf style; also the ``format`` filter), sized before it runs."""
    what = "the formatted text"
    fmt = template.decode("latin-1") if isinstance(template, bytes | bytearray) else template
    if not isinstance(fmt, str):
        return template % args
    if isinstance(args, tuple):
        values: tuple[Any, ...] = args
        mapping: Any = None
    else:
        values, mapping = (args,), args if isinstance(args, Mapping) else None
    total = len(fmt)
    position = 0

    def next_value() -> Any:
        nonlocal position
        if position >= len(values):
            raise ExpressionError("not enough arguments for the format string")
        position += 1
        return values[position - 1]

    for match in _PRINTF.finditer(fmt):
        budget.tick()
        kind = match["type"]
        if kind == "%" and match.group(0) == "%%":
            continue
        width_text, precision_text = match["width"], match["precision"]
        width = _star(budget, next_value(), what) if width_text == "*" else _number(budget, width_text or "0", what)
        if precision_text == "*":
            precision: int | None = _star(budget, next_value(), what)
        else:
            precision = None if precision_text is None else _number(budget, precision_text or "0", what)
        if match["key"] is not None:
            if mapping is None:
                raise ExpressionError("format requires a mapping for %(name)s conversions")
            try:
                value = mapping[match["key"]]
            except KeyError:
                raise ExpressionError(f"the format's key {match['key']!r} is not in the mapping") from None
        else:
            value = next_value()
        if kind in ("s", "r", "a", "b"):
            convert = {"r": repr, "a": ascii}.get(kind, str)
            piece = len(text_of(budget, value, what, convert))
            if precision is not None:
                piece = min(piece, precision)
        elif isinstance(value, int) and kind != "c":  # the size of an integer counts its digits
            piece = budget.size(value) + (precision or 0) + 2
        else:  # a float in any notation, or one character
            piece = _FLOAT_DIGITS + (precision or 0)
        total += max(width, piece)
        budget.check_size(total, what)
    result = template % args
    budget.check_size(len(result), what)
    return result


def check_spec(budget: RenderBudget, spec: str, what: str = "the formatted text") -> None:
    """Refuse a ``format()`` spec whose width or precision is over the limit.

    Every number in the spec is treated as a width: conservative for the standard spec
    (``>10``, ``.3f``, ``0=12,``) and safe for a type's own spec language.
    """
    for digits in _DIGITS.findall(spec):
        _number(budget, digits, what)


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` / ``format_map`` for the sandbox: each field sized, the total counted."""

    def __init__(self, env: Any, budget: RenderBudget, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.budget = budget
        self.total = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion in ("r", "s", "a"):
            convert = {"r": repr, "a": ascii}.get(conversion, str)
            return text_of(self.budget, value, "a formatted field", convert)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.budget.tick()
        check_spec(self.budget, format_spec)
        if not isinstance(value, str):
            self.budget.check(value, "a formatted field")
        text = super().format_field(value, format_spec)
        self.total += len(text)
        self.budget.check_size(self.total, "the formatted text")
        return text


def bounded_format(env: Any, budget: RenderBudget, owner: str, *, as_map: bool) -> Callable[..., str]:
    """The sandbox's replacement for ``owner.format`` (or ``owner.format_map``)."""

    def call(*args: Any, **kwargs: Any) -> str:
        if as_map:
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            mapping = args[0]
            args, kwargs = (), mapping
        formatter = (
            BoundedEscapeFormatter(env, budget, escape=owner.escape)
            if isinstance(owner, Markup)
            else BoundedFormatter(env, budget)
        )
        text = formatter.vformat(owner, args, kwargs)
        budget.check_size(len(text), "the formatted text")
        return type(owner)(text)

    return call


class BoundedEscapeFormatter(BoundedFormatter, EscapeFormatter):
    """The same for ``Markup`` strings: fields are escaped, as Jinja's sandbox does."""


# --- str and bytes methods whose result can be much larger than the string --------------------


def _width(budget: RenderBudget, owner: Any, width: Any = 0, *_: Any, **__: Any) -> None:
    if isinstance(width, int):
        budget.check_size(width, f"padding to {width}")


def _expandtabs(budget: RenderBudget, owner: Any, tabsize: Any = 8, *_: Any, **__: Any) -> None:
    if isinstance(tabsize, int):
        tab = "\t" if isinstance(owner, str) else b"\t"
        budget.check_size(len(owner) + owner.count(tab) * max(tabsize, 0), "expanding tabs")


def replaced_size(owner: Any, old: Any, new: Any, count: Any = -1) -> int | None:
    """How long ``owner.replace(old, new, count)`` would be (None when the types do not fit)."""
    if not (isinstance(old, type(owner)) and isinstance(new, type(owner))) and not (
        isinstance(owner, str) and isinstance(old, str) and isinstance(new, str)
    ):
        return None
    times = owner.count(old) if old else len(owner) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(owner) + times * max(len(new) - len(old), 0)


def _replace(
    budget: RenderBudget, owner: Any, old: Any = "", new: Any = "", count: Any = -1, *_: Any, **__: Any
) -> None:
    size = replaced_size(owner, old, new, count)
    if size is not None:
        budget.check_size(size, "the replaced text")


def _translate(budget: RenderBudget, owner: Any, table: Any = None, *_: Any, **__: Any) -> None:
    if not isinstance(owner, str):
        return  # bytes.translate maps byte to byte
    values: Iterable[Any] = table.values() if isinstance(table, Mapping) else table if isinstance(table, list) else ()
    longest = max((len(v) for v in values if isinstance(v, str)), default=1)
    budget.check_size(len(owner) * max(longest, 1), "the translated text")


def _to_bytes(budget: RenderBudget, owner: Any, length: Any = 1, *_: Any, **__: Any) -> None:
    if isinstance(length, int):
        budget.check_size(length, f"{length} bytes")


def joined(budget: RenderBudget, separator: Any, parts: Iterable[Any], *, convert: bool) -> Any:
    """``separator.join(parts)``, counting the size of the parts (and separators) as they come.

    ``convert``: parts are turned into text first (the ``join`` filter); otherwise they must
    already be text (``str.join``).
    """
    texts: list[Any] = []
    total = 0
    for step, part in enumerate(parts, 1):
        if not step & 63:
            budget.check_time()
        if convert and not isinstance(part, str):
            part = text_of(budget, part, "the joined text")
        if texts:
            total += len(separator)
        total += len(part) if isinstance(part, str | bytes) else 1  # a wrong type: join says so
        budget.check_size(total, "the joined text")
        texts.append(part)
    return separator.join(texts)


def _join_check(budget: RenderBudget, owner: Any) -> Callable[..., Any]:
    def join(parts: Iterable[Any]) -> Any:
        return joined(budget, owner, parts, convert=False)

    return join


#: method name -> check(budget, the string, *args) run before the method itself.
_CHECKS: dict[str, Callable[..., None]] = {
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "translate": _translate,
}


def bounded_method(env: Any, budget: RenderBudget, method: Any) -> Callable[..., Any] | None:
    """A bounded stand-in for ``method`` (a method of a str, bytes or int), or None if it needs none."""
    if not isinstance(method, types.MethodType | types.BuiltinMethodType):
        return None
    name = method.__name__
    owner = method.__self__
    if isinstance(owner, str | bytes):
        if name in ("format", "format_map") and isinstance(owner, str):
            return bounded_format(env, budget, owner, as_map=name == "format_map")
        if name == "join":
            return _join_check(budget, owner)
        check = _CHECKS.get(name)
    elif isinstance(owner, int) and not isinstance(owner, bool) and name == "to_bytes":
        check = _to_bytes
    else:
        return None
    if check is None:
        return None
    sized = check

    def call(*args: Any, **kwargs: Any) -> Any:
        sized(budget, owner, *args, **kwargs)
        return method(*args, **kwargs)

    return call
