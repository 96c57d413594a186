"""Calling a blocking (requests-based) provider SDK from a node: PyGithub, pyairtable.

:func:`run_blocking` runs the SDK call in a worker thread so the event loop keeps serving
other nodes, bounds it with a deadline, closes the SDK client in that same thread when the
call is done, and translates the SDK's exceptions onto the node error tree at this one seam
(``raise ... from exc``):

* ``requests`` timeouts and connection errors -> ``TransientError`` (:mod:`nodes.provider_errors`);
* the family's ``translate`` maps its SDK's other exceptions (``None``: not one of its own);
* a ``RecursionError`` (the SDK parsed a hostile body nested thousands deep) -> ``ProviderError``;
* the deadline passing -> ``TransientError``. The thread cannot be stopped: it finishes in the
  background (its own request timeouts bound it), and its result is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import requests

from nodes.errors import NodeError
from nodes.provider_errors import connection_error, timeout_error, too_deep

T = TypeVar("T")
C = TypeVar("C")

#: Translates one of the SDK's exceptions to a node error (None: not the SDK's to translate).
Translate = Callable[[Exception], NodeError | None]


async def run_blocking(
    provider: str,
    client: C,
    operation: Callable[[C], T],
    *,
    timeout: float,
    translate: Translate | None = None,
    close: Callable[[C], object] | None = None,
    request_timeout: float | None = None,
) -> T:
    """``operation(client)`` in a worker thread, at most ``timeout`` seconds, SDK errors
    translated; ``close(client)`` runs in the thread once the operation is over.

    ``request_timeout`` is what a requests timeout is reported as (the SDK's per-request
    limit); the overall ``timeout`` bounds operations that page through many requests.
    """

    def call() -> T:
        try:
            return operation(client)
        finally:
            if close is not None:
                close(client)

    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(call)
    except TimeoutError as exc:
        raise timeout_error(provider, timeout) from exc
    except RecursionError as exc:
        raise too_deep(provider) from exc
    except NodeError:
        raise
    except requests.Timeout as exc:
        raise timeout_error(provider, request_timeout or timeout) from exc
    except requests.ConnectionError as exc:
        raise connection_error(provider, exc) from exc
    except Exception as exc:
        translated = translate(exc) if translate is not None else None
        if translated is not None:
            raise translated from exc
        raise
