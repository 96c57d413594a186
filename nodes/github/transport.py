"""The one place GitHub nodes talk to GitHub: client construction and error mapping.

PyGithub is synchronous (requests), so calls run in a worker thread
(:func:`nodes.blocking_sdk.run_blocking`). Its own retries and request pacing are off: retries
are Prefect's, per node, and visible. GitHub's failures map onto the node error tree in
:mod:`nodes.provider_errors`; GitHub's own rule: a 403 is a rate limit (transient) when it says
how long to wait (``Retry-After``, or ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset``)
or when its message names a secondary rate limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from nodes.auth import with_token
from nodes.blocking_sdk import run_blocking
from nodes.context import NodeContext
from nodes.errors import NodeError, parse_retry_after
from nodes.provider_errors import error_for_status
from nodes.providers import ErrorRules, OAuth, Provider, register_provider

if TYPE_CHECKING:  # PyGithub is imported on the first call, not with the node registry
    from github import Github, GithubException

T = TypeVar("T")


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds GitHub asks to wait: ``Retry-After``, or until ``X-RateLimit-Reset`` when no quota is left."""
    if "retry-after" in headers:
        return parse_retry_after(headers["retry-after"])
    reset = headers.get("x-ratelimit-reset")
    if headers.get("x-ratelimit-remaining") == "0" and reset and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return None


def is_rate_limited(status: int, headers: Mapping[str, str], body: Any) -> bool:
    """GitHub answers its primary and secondary rate limits with 403 (or 429)."""
    if status != 403:
        return False
    message = body.get("message") if isinstance(body, dict) else None
    return rate_limit_wait(headers) is not None or "secondary rate limit" in str(message or "").lower()


DESCRIPTOR = register_provider(
    Provider(
        name="github",
        title="GitHub",
        base_url="https://api.github.com",
        # GitHub's secondary limits: 900 REST points a minute, far fewer for writes.
        per_second=10.0,
        timeout=30.0,
        oauth=OAuth(
            "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token", ("repo",)
        ),
        errors=ErrorRules(is_transient=is_rate_limited, retry_after=rate_limit_wait),
        nodes="github.*",
    )
)
PROVIDER = DESCRIPTOR.name
DEFAULT_BASE_URL = DESCRIPTOR.base_url
TIMEOUT_SECONDS = int(DESCRIPTOR.timeout)
#: The longest one operation (which may page through many requests) may take.
OPERATION_TIMEOUT_SECONDS = 300.0


def client(token: str, base_url: str | None) -> Github:
    """A PyGithub client (``base_url`` points at GitHub Enterprise or a fake)."""
    from github import Auth, Github

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
    """GitHub's ``message``, with the details of its ``errors`` array ("Validation Failed"
    alone does not say that a pull request already exists)."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.data or exc)
    errors = data.get("errors")
    details = [_detail(error) for error in errors] if isinstance(errors, list) else []
    details = [d for d in details if d and d not in message]
    return f"{message}: {'; '.join(details)}" if details else message


def _detail(error: object) -> str:
    """One entry of GitHub's ``errors``: a message, or ``{resource, field, code}``."""
    if not isinstance(error, dict):
        return str(error)
    if error.get("message"):
        return str(error["message"])
    where = ".".join(str(error[key]) for key in ("resource", "field") if error.get(key))
    return f"{where} {error.get('code', 'invalid')}".strip()


def translate(exc: Exception, ctx: NodeContext, what: str | None = None) -> NodeError | None:
    """Map a PyGithub failure onto the node error tree (None: not PyGithub's)."""
    from github import GithubException

    if not isinstance(exc, GithubException):
        return None
    return error_for_status(
        PROVIDER,
        exc.status,
        message=_message(exc),
        headers=exc.headers or {},
        body=exc.data,
        credential=ctx.credential_name,
        request=what,
    )


async def request(ctx: NodeContext, operation: Callable[[Github], T], *, what: str | None = None) -> T:
    """Run a blocking PyGithub ``operation(client)`` in a thread with the node's credential,
    translating its errors (an OAuth token refused with 401 is refreshed once). ``what``
    names the thing asked for ("acme/api: README.md"), in the message of a 404."""

    async def attempt(token: str, base_url: str | None) -> T:
        return await run_blocking(
            PROVIDER,
            client(token, base_url),
            operation,
            timeout=OPERATION_TIMEOUT_SECONDS,
            request_timeout=TIMEOUT_SECONDS,
            translate=lambda exc: translate(exc, ctx, what),
            close=lambda github: github.close(),
        )

    return await with_token(ctx, attempt)
