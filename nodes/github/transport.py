"""The one place GitHub nodes talk to GitHub: client construction and error mapping.

PyGithub is synchronous (requests), so calls run in a worker thread. Its own retries and
request pacing are off: retries are Prefect's, per node, and visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from github import Auth, Github, GithubException

from nodes.auth import with_token
from nodes.context import NodeContext
from nodes.errors import AuthError, ProviderError, TransientError, parse_retry_after

PROVIDER = "github"
DEFAULT_BASE_URL = "https://api.github.com"
TIMEOUT_SECONDS = 30

T = TypeVar("T")


def client(token: str, base_url: str | None) -> Github:
    """A PyGithub client (``base_url`` points at GitHub Enterprise or a fake)."""
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


async def run(ctx: NodeContext, operation: Callable[[Github], T]) -> T:
    """Run a blocking PyGithub ``operation(client)`` in a thread with the node's credential,
    translating its errors (an OAuth token refused with 401 is refreshed once)."""

    async def attempt(token: str, base_url: str | None) -> T:
        github = client(token, base_url)
        try:
            return await asyncio.to_thread(operation, github)
        except (GithubException, requests.RequestException) as exc:
            raise translate(exc, ctx) from exc
        except RecursionError as exc:  # PyGithub parsed a hostile body nested thousands deep
            raise ProviderError("GitHub answered JSON nested too deeply to read", provider=PROVIDER) from exc
        finally:
            github.close()

    return await with_token(ctx, attempt)
