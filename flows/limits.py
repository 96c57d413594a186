"""Bounds on workflow definitions and run inputs, checked before anything is built from them.

A definition arrives as bytes (a file), text, or a Python dict (``switchboard.run(dict)``, a
stored definition). Each form can be hostile: a 100k-deep nesting, a YAML "billion laughs" (or
its Python form, one list referenced from everywhere), a 5000-digit integer, ``NaN``. The YAML
and JSON loaders refuse these while parsing (``flows.safe_yaml``, ``nodes.safe_json``);
:func:`check_data` refuses them in plain data, walking it iteratively (no recursion) and stopping
at the first bound crossed, so its cost is bounded by the limits, not by the data.

The limits are far above any real workflow (the examples are a few kB, ~200 values, 5 levels
deep) and low enough that pydantic, the planner and the JSON store handle a definition at the
limit in well under a second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: Largest workflow file or text (bytes), read before anything is decoded.
MAX_DEFINITION_BYTES = 1024 * 1024
#: Deepest nesting of lists and mappings (the definition's own structure included).
MAX_DEPTH = 64
#: Most values (scalars, lists, mappings, mapping keys) in one definition, each alias use counted in full.
MAX_VALUES = 50_000
#: Most characters in all strings (mapping keys included), each alias use counted in full.
MAX_TEXT = 4 * 1024 * 1024
#: Run inputs are data, not a program: the same depth and digits, more room (a webhook's JSON
#: body is at most 1 MiB anyway; these bound what a Python caller may pass).
MAX_INPUT_VALUES = 1_000_000
MAX_INPUT_TEXT = 64 * 1024 * 1024
#: Longest integer (decimal digits); Python refuses to print ints past 4300 digits anyway.
MAX_INT_DIGITS = 100
#: ``2**332 < 10**100 <= 2**333``: an int of more bits certainly has more than 100 digits.
_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))

_SURROGATE = re.compile("[\ud800-\udfff]")


class LimitError(ValueError):
    """Data outside the bounds; ``path`` is where (mapping keys and list indexes)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def check_scalar(value: Any) -> str | None:
    """What is wrong with one scalar (an int too long, a float not finite, a lone surrogate), or None."""
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            return "has a lone surrogate character (not valid Unicode text)"
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            return f"has an integer of more than {MAX_INT_DIGITS} digits"
    elif isinstance(value, float) and not math.isfinite(value):
        return f"has the number {value}, which is not finite (JSON has no NaN or Infinity)"
    return None


def _path_of(link: tuple[Any, ...] | None) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    while link is not None:
        key, link = link
        parts.append(key)
    return tuple(reversed(parts))


#: Scalars that cannot be out of bounds (checked by type, the fast path of the walk).
_PLAIN = frozenset({bool, type(None)})


def check_data(
    data: Any, *, max_depth: int = MAX_DEPTH, max_values: int = MAX_VALUES, max_text: int = MAX_TEXT
) -> None:
    """Refuse ``data`` past the bounds, or with non-string keys or bad scalars; raises :class:`LimitError`.

    Shared references count each time they are reached (a list referenced 1000 times is 1000
    lists), a container inside itself is endless depth. Lists, tuples and mappings are walked;
    anything else is one value. Values are counted when reached, before their children are,
    so the walk holds at most ``max_values`` entries whatever the data.
    """
    values = 1
    text = 0
    # (value, its depth, a link to its path: (key, parent link)); a stack, not recursion.
    stack: list[tuple[Any, int, tuple[Any, ...] | None]] = [(data, 0, None)]
    while stack:
        value, depth, link = stack.pop()
        kind = type(value)
        if kind is str:
            text += len(value)
            if text > max_text:
                raise LimitError(
                    f"holds more than {max_text:,} characters of text (each use of a shared string or YAML "
                    "alias counts in full)",
                    _path_of(link),
                )
        if kind is str or kind is int or kind is float:
            problem = check_scalar(value)
            if problem:
                raise LimitError(problem, _path_of(link))
            continue
        if kind in _PLAIN:
            continue
        mapping = kind is dict or (kind is not list and isinstance(value, Mapping))
        if mapping or kind is list or isinstance(value, list | tuple):
            if depth >= max_depth:
                raise LimitError(f"nests deeper than {max_depth} levels (or contains itself)", _path_of(link))
            values += 2 * len(value) if mapping else len(value)  # mapping keys are values too
            if values > max_values:
                raise LimitError(
                    f"holds more than {max_values:,} values (each use of a shared list, mapping or YAML "
                    "alias counts in full)",
                    _path_of(link),
                )
            depth += 1
            if not mapping:
                stack.extend((item, depth, (index, link)) for index, item in enumerate(value))
                continue
            for key, item in value.items():
                if type(key) is not str:
                    raise LimitError(
                        f"has the key {str(key)[:40]!r} ({type(key).__name__}); keys must be strings",
                        _path_of(link),
                    )
                stack.append((item, depth, (key, link)))
                stack.append((key, depth, link))  # counted as text, checked like any string
            continue
        problem = check_scalar(value)
        if problem:
            raise LimitError(problem, _path_of(link))
