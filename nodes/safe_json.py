"""JSON from untrusted senders, parsed with its bounds checked before anything is built.

Webhook bodies, Slack payloads, run inputs typed in Slack or on the command line, workflow
files and provider responses are all hostile until parsed. Python's ``json`` turns a 100k-deep
document into a ``RecursionError``, a 5000-digit integer into a bare ``ValueError`` about
int-to-string limits, and accepts ``NaN``, ``Infinity`` and duplicate keys without a word.
:func:`loads` refuses each of those with :class:`UnsafeJSONError`, whose message says what is
wrong and where, so a caller can answer 400 or exit 2 instead of failing with a traceback:

* the size is checked first (``max_bytes``), before anything is decoded;
* the nesting depth is measured on the raw text (strings skipped) and refused past
  ``max_depth`` before the parser recurses;
* integers longer than ``max_int_digits`` digits, non-finite numbers (``NaN``,
  ``Infinity``, a float that overflows) and, with ``unique_keys``, duplicate object keys are
  refused while parsing.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

#: Defaults: generous for inputs, definitions and API responses, small enough to refuse attacks.
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 100

# A JSON string (escapes included), and the brackets outside strings.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class UnsafeJSONError(ValueError):
    """The text is not JSON within the bounds; the message names the problem (and where)."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in ``text``, brackets inside strings not counted.

    Malformed text gives some depth (the parser then says what is wrong). Linear, and the
    per-bracket work happens in C (``map``/``accumulate``), not in a Python loop.
    """
    if text.count("[") + text.count("{") == 0:
        return 0
    bare = _STRING.sub('""', text) if '"' in text else text
    brackets = _NOT_BRACKET.sub("", bare)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _offset_of_depth(text: str, limit: int) -> int:
    """Where ``text`` first nests deeper than ``limit`` (for the error message only)."""
    # Strings blanked to the same length, so offsets stay those of the original text.
    bare = _STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', text)
    depth = 0
    for match in _BRACKET.finditer(bare):
        depth += 1 if match.group() in "[{" else -1
        if depth > limit:
            return match.start()
    return 0


def _line_col(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line} column {column}"


def loads(
    data: str | bytes,
    *,
    what: str = "JSON",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    max_int_digits: int = MAX_INT_DIGITS,
    unique_keys: bool = True,
) -> Any:
    """Parse ``data`` (UTF-8 bytes or text) as JSON within the bounds; ``what`` names it in errors.

    Raises :class:`UnsafeJSONError` for anything that is not JSON or is outside the bounds.
    """
    if isinstance(data, str):  # a text longer than the limit in characters is too long in bytes
        size = len(data) if len(data) > max_bytes else len(data.encode("utf-8", "surrogatepass"))
    else:
        size = len(data)
    if size > max_bytes:
        raise UnsafeJSONError(f"{what} is {size:,} bytes, more than the {max_bytes:,} allowed")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UnsafeJSONError(f"{what} is not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    if nesting_depth(text) > max_depth:
        at = _line_col(text, _offset_of_depth(text, max_depth))
        raise UnsafeJSONError(f"{what} nests deeper than {max_depth} levels (at {at})")

    def parse_int(literal: str) -> int:
        digits = len(literal.lstrip("-"))
        if digits > max_int_digits:
            raise UnsafeJSONError(f"{what} has an integer of {digits:,} digits (at most {max_int_digits})")
        return int(literal)

    def parse_float(literal: str) -> float:
        if len(literal) > max_int_digits + 30:
            raise UnsafeJSONError(f"{what} has a number of {len(literal):,} characters")
        value = float(literal)
        if not math.isfinite(value):
            raise UnsafeJSONError(f"{what} has a number too large for a float: {literal[:40]}")
        return value

    def parse_constant(name: str) -> Any:
        raise UnsafeJSONError(f"{what} has {name}, which is not a JSON number")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(items)
        if unique_keys and len(result) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    raise UnsafeJSONError(f"{what} has the key {key[:100]!r} twice in one object")
                seen.add(key)
        return result

    try:
        return json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=parse_constant,
            object_pairs_hook=pairs,
        )
    except json.JSONDecodeError as exc:
        raise UnsafeJSONError(f"{what} is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # the depth check above makes this unreachable for valid bounds
        raise UnsafeJSONError(f"{what} nests too deeply") from None
