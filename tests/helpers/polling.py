"""Waiting for something a test can observe, instead of sleeping and hoping.

:func:`poll_until` (blocking) and :func:`apoll_until` (in an event loop) call a predicate until
it returns a truthy value, and return that value; past ``timeout`` they raise
:class:`PollTimeout`, an ``AssertionError`` saying what was awaited and the last value seen::

    (answer,) = await apoll_until(lambda: bot.slack.responses("help"), message="the help answer")

An exception the predicate raises (say, "the process exited") ends the wait at once.
"""

from __future__ import annotations

import asyncio
import inspect
import reprlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: How long a wait lasts unless told: long enough for a busy 2-core machine, short enough that
#: a missing answer fails the test instead of hanging it.
TIMEOUT = 30.0
#: How often the predicate is called unless told.
INTERVAL = 0.05

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 300
_repr.maxlist = _repr.maxdict = 10


class PollTimeout(AssertionError):
    """A polled condition did not hold within its timeout.

    ``message`` says what was awaited, ``timeout`` how long, ``last`` what the predicate
    returned the last time it was called.
    """

    def __init__(self, message: str, *, timeout: float, last: object) -> None:
        super().__init__(f"waited {timeout:g} s for {message}; last value seen: {_repr.repr(last)}")
        self.message = message
        self.timeout = timeout
        self.last = last


def poll_until(predicate: Callable[[], T], *, message: str, timeout: float = TIMEOUT, interval: float = INTERVAL) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value; return it.

    Raises :class:`PollTimeout` (naming ``message``) once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PollTimeout(message, timeout=timeout, last=value)
        time.sleep(interval)


@overload
async def apoll_until(
    predicate: Callable[[], Awaitable[T]], *, message: str, timeout: float = ..., interval: float = ...
) -> T: ...


@overload
async def apoll_until(
    predicate: Callable[[], T], *, message: str, timeout: float = ..., interval: float = ...
) -> T: ...


async def apoll_until(
    predicate: Callable[[], Any],
    *,
    message: str,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> Any:
    """Like :func:`poll_until` in an event loop; ``predicate`` may be sync or async (its
    awaitable is awaited), and the loop runs other tasks between calls."""
    deadline = time.monotonic() + timeout
    while True:
        value: Any = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise PollTimeout(message, timeout=timeout, last=value)
        await asyncio.sleep(interval)
