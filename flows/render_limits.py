"""The bounds of one template render, and the size of a value as the bounds count it.

Every value a template builds — a literal, an operator's or a filter's or a call's result, a
joined text — is measured *before* it is built where its size can be known from the inputs
(a width, a repeat count, the parts of a join) and is otherwise checked as soon as it exists
(a filter's result). The measure, :meth:`RenderBudget.size`, counts characters of text and
items of sequences *through* nested containers, so ten references to one 10^6-item list
weigh 10^7: what ``|string``, ``|tojson`` or a join of that value would have to allocate.
Measuring is linear in the distinct containers (sizes are remembered per render by identity)
and stops as soon as the limit is passed.

The clock is checked by the operations a render cannot avoid: calls, operators, loop
iterations, output chunks, literals. A render therefore stops within a few operations of its
deadline; no single operation can run long, because none is given an input larger than the
size limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass
from itertools import chain
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError

#: Text and items a value built by a template may hold in all (nested ones counted).
MAX_OUTPUT_CHARS = 1_000_000
MAX_SEQUENCE_ITEMS = 1_000_000
#: The largest exponent ``**`` accepts, and the size of integers ``*`` and ``**`` may make.
MAX_EXPONENT = 256
MAX_INT_BITS = 65_536
#: How long one render may take (a node's own ``timeout`` can only shorten it).
RENDER_TIMEOUT_SECONDS = 2.0
#: The share of a node's ``timeout`` its templates may take to render.
NODE_TIMEOUT_SHARE = 0.9
#: How deep a value built by a template may nest (serialising deeper ones recurses too far).
MAX_VALUE_DEPTH = 100
#: How deep macros (and recursive loops) may call each other.
MAX_CALL_DEPTH = 50


class ExpressionError(ValueError):
    """A template is invalid, unsafe, or failed to render.

    ``path`` names the string inside a value (``values.greeting``, ``[2]``) when known.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class RenderLimits:
    """What one render may spend; operators set them with ``SWITCHBOARD_TEMPLATE_*``."""

    timeout_seconds: float = RENDER_TIMEOUT_SECONDS
    #: Characters and items (nested ones counted) of any value a template builds or outputs.
    max_size: int = MAX_OUTPUT_CHARS

    def within(self, timeout: float | None) -> RenderLimits:
        """These limits for a node with ``timeout``: the render may take 90% of it at most, so
        that a slow template fails as such (permanently) before the task's timeout fires (a
        timeout is retried)."""
        if timeout is None or timeout * NODE_TIMEOUT_SHARE >= self.timeout_seconds:
            return self
        return RenderLimits(timeout_seconds=round(timeout * NODE_TIMEOUT_SHARE, 3), max_size=self.max_size)


DEFAULT_LIMITS = RenderLimits()

_CONTAINERS = (list, tuple, dict, set, frozenset)
#: Types measured without a walk (checked by exact type: the common case, made cheap).
_ONE = frozenset({float, bool, type(None)})


class RenderBudget:
    """The running render: its limits, its deadline and the sizes measured so far."""

    __slots__ = ("calls", "deadline", "known", "limits", "max_size", "ticks")

    def __init__(self, limits: RenderLimits = DEFAULT_LIMITS, deadline: float = math.inf) -> None:
        self.limits = limits
        self.max_size = limits.max_size
        self.deadline = deadline
        #: id -> (the container, its size, its depth, an undefined value inside it); the
        #: container is kept so that its id stays its own while the render runs.
        self.known: dict[int, tuple[Any, int, int, Any]] = {}
        #: Macro and recursive-loop calls in progress.
        self.calls = 0
        #: Operations since the clock was last read (reading it on every one costs ~5%).
        self.ticks = 0

    def check_time(self) -> None:
        """Raise once the render has run out of time."""
        if time.monotonic() > self.deadline:
            raise ExpressionError(f"template took longer than {self.limits.timeout_seconds:g}s to render")

    def tick(self) -> None:
        """Count one cheap operation; read the clock every 64."""
        self.ticks += 1
        if not self.ticks & 63:
            self.check_time()

    def size(self, value: Any) -> int:
        """Characters and items in ``value``, nested ones counted; ``max_size + 1`` means "more"."""
        return self.measure(value)[0]

    def measure(self, value: Any, *, strict: bool = False) -> tuple[int, int]:
        """``(size, depth)`` of ``value``; the walk stops past ``max_size`` or ``MAX_VALUE_DEPTH``.

        A value the sandbox refused (an unsafe attribute) inside a container raises its
        ``SecurityError`` here; with ``strict``, so does any undefined value inside one (a
        rendered value must not carry undefined things out of the template).
        """
        if not isinstance(value, _CONTAINERS):
            return _scalar_size(value), 0
        entry = self.known.get(id(value)) or self._walk(value)
        if strict and entry[3] is not None:
            entry[3]._fail_with_undefined_error()
        return entry[1], entry[2]

    def measured(self, value: Any) -> tuple[int, int] | None:
        """``(size, depth)`` of a container measured earlier in this render, else None."""
        entry = self.known.get(id(value))
        return None if entry is None else (entry[1], entry[2])

    def _walk(self, value: Any) -> tuple[Any, int, int, Undefined | None]:
        """Measure a container not measured before; remembers it (and its parts) by identity."""
        over = self.max_size + 1
        known = self.known
        running = steps = 0
        # Each frame: [container, iterator over its children, size, depth, first undefined inside]
        frames: list[list[Any]] = [[value, _children(value), 0, 1, None]]
        while frames:
            frame = frames[-1]
            contents, depth, undefined = frame[2], frame[3], frame[4]
            for child in frame[1]:
                kind = type(child)
                if kind is str:
                    size = len(child) or 1
                elif kind is int:
                    size = child.bit_length() // 3 + 1
                elif kind in _ONE:
                    size = 1
                elif isinstance(child, _CONTAINERS):
                    hit = known.get(id(child))
                    if hit is None:
                        if len(frames) >= MAX_VALUE_DEPTH:
                            return self._remember(value, running, MAX_VALUE_DEPTH + 1, None)
                        frame[2], frame[3], frame[4] = contents, depth, undefined
                        frames.append([child, _children(child), 0, 1, None])
                        break
                    size = hit[1]
                    depth = max(depth, hit[2] + 1)
                    undefined = undefined or hit[3]
                else:
                    size = _scalar_size(child)
                    if isinstance(child, Undefined):
                        if child._undefined_exception is SecurityError:
                            child._fail_with_undefined_error()
                        undefined = undefined or child
                contents += size
                running += size
                steps += 1
                if running > self.max_size:
                    return self._remember(value, over, depth, undefined)
                if not steps & 4095:
                    self.check_time()
            else:
                frames.pop()
                size = max(1, contents)
                self._remember(frame[0], size, depth, undefined)
                if not frames:
                    return known[id(value)]
                parent = frames[-1]
                parent[2] += size
                parent[3] = max(parent[3], depth + 1)
                parent[4] = parent[4] or undefined
                running += size - contents  # an empty container counts one
                if running > self.max_size:
                    return self._remember(value, over, parent[3], parent[4])
        raise AssertionError("unreachable: the root frame returns")

    def _remember(self, value: Any, size: int, depth: int, undefined: Undefined | None) -> tuple[Any, int, int, Any]:
        entry = (value, size, depth, undefined)
        self.known[id(value)] = entry
        return entry

    def check(self, value: Any, what: str = "the value", *, strict: bool = False) -> Any:
        """``value``, after checking its size and depth against the limits."""
        kind = type(value)
        if kind in _ONE or (kind is str and len(value) <= self.max_size) or kind is int:
            return value
        self.tick()
        size, depth = self.measure(value, strict=strict)
        if depth > MAX_VALUE_DEPTH:
            raise ExpressionError(f"{what} would nest deeper than {MAX_VALUE_DEPTH} levels")
        self.check_size(size, what)
        return value

    def check_size(self, size: int, what: str) -> None:
        """Refuse an operation whose result would hold ``size`` characters or items."""
        if size > self.max_size:
            raise ExpressionError(f"{what} would hold more than {self.max_size} characters or items")


def _scalar_size(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray):
        return len(value) or 1
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 1  # about its decimal digits (a little more)
    return 1


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return chain.from_iterable(value.items())
    return iter(value)


_current: ContextVar[RenderBudget | None] = ContextVar("switchboard_render_budget", default=None)


def budget() -> RenderBudget:
    """The running render's budget (outside a render: default limits and no deadline)."""
    current = _current.get()
    return current if current is not None else RenderBudget()


class rendering:  # lower case: used like a function, `with rendering(limits) as budget:`
    """The bounds of the render in this block.

    With ``limits``, a fresh budget and clock start here; without, the render already running
    (all the templates of one node's params share its clock) goes on, or one with the default
    limits starts. A class rather than a generator: it is entered on every render.
    """

    __slots__ = ("budget", "limits", "token")

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits
        self.token: Token[RenderBudget | None] | None = None

    def __enter__(self) -> RenderBudget:
        current = _current.get()
        if self.limits is None and current is not None:
            return current
        limits = self.limits or DEFAULT_LIMITS
        fresh = RenderBudget(limits, time.monotonic() + limits.timeout_seconds)
        self.token = _current.set(fresh)
        return fresh

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _current.reset(self.token)
            self.token = None
