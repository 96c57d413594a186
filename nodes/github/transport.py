"""The one place GitHub nodes talk to GitHub: client construction and error mapping.

PyGithub is synchronous (requests), so calls run in a worker thread. Its own retries and
request pacing are off: retries are Prefect's, per node, and visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException

from nodes.context import NodeContext
from nodes.errors import AuthError, ProviderError, TransientError, parse_retry_after

PROVIDER = "github"
DEFAULT_BASE_URL = "https://api.github.com"
TIMEOUT_SECONDS = 30

T = TypeVar("T")


async def client(ctx: NodeContext) -> Github:
    """A PyGithub client for the node's credential (its ``base_url`` points at GitHub Enterprise or a fake)."""
    token, base_url = await ctx.api_key()
    return Github(
        auth=Auth.Token(token),
        base_url=(base_url or DEFAULT_BASE_URL).rstrip("/"),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        timeout=TIMEOUT_SECONDS,
        lazy=True,
    )


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return str(data.get("message") or exc.data or exc)


def _retry_after(exc: GithubException) -> float | None:
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    if "retry-after" in headers:
        return parse_retry_after(headers["retry-after"])
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def translate(exc: Exception, ctx: NodeContext) -> Exception:
    """Map a PyGithub/requests failure onto the node error tree."""
    if isinstance(exc, GithubException):
        status = exc.status
        retry_after = _retry_after(exc)
        if status == 401:
            return AuthError("GitHub refused the token", provider=PROVIDER, credential=ctx.credential_name, status=401)
        if status == 429 or status >= 500 or (status == 403 and retry_after is not None):
            return TransientError(_message(exc), provider=PROVIDER, status=status, retry_after=retry_after)
        return ProviderError(_message(exc), provider=PROVIDER, status=status)
    if isinstance(exc, requests.Timeout):
        return TransientError(f"timed out after {TIMEOUT_SECONDS}s", provider=PROVIDER)
    if isinstance(exc, requests.ConnectionError):
        return TransientError(f"connection failed: {exc}", provider=PROVIDER)
    return exc


async def call(ctx: NodeContext, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking PyGithub call in a thread, translating its errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (GithubException, requests.RequestException) as exc:
        raise translate(exc, ctx) from exc
