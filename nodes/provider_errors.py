"""The one mapping from a provider's failure onto the node error tree (:mod:`nodes.errors`).

Every provider transport — REST over httpx (:mod:`nodes.rest`), an SDK run in a thread
(:mod:`nodes.blocking_sdk`), the openai SDK — reads its failure (status, headers, the
provider's own message) and hands it to :func:`error_for_status`::

    401                     AuthError       "<Title> refused the credential: <message>"; an OAuth
                                            credential is refreshed once (nodes.auth.with_token)
    429, 5xx                TransientError  retried, ``retry_after`` from Retry-After
    a provider's own rule   TransientError  (ErrorRules.is_transient: Google's 403 rateLimitExceeded,
                                            GitHub's 403 with no quota left)
    404                     ProviderError   the message names what was asked for ("(GET /path)")
    any other status        ProviderError   the provider's message
    timeout, no connection  TransientError  (:func:`timeout_error`, :func:`connection_error`)

Where a provider really differs, its descriptor's :class:`nodes.providers.ErrorRules` says so
(Airtable's 30 s wait after a 429 that names none, GitHub's ``X-RateLimit-Reset``); Slack's
``{"ok": false}`` bodies are classified by ``nodes.slack`` and built here with :func:`error_of_kind`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from nodes.errors import AuthError, ProviderError, TransientError, parse_retry_after
from nodes.providers import ErrorRules, find_provider, title

Kind = Literal["auth", "transient", "permanent"]

#: Longest provider error text carried into a node error.
MESSAGE_LIMIT = 500


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _rules(provider: str) -> ErrorRules:
    found = find_provider(provider)
    return found.errors if found is not None else ErrorRules()


def classify(provider: str, status: int, headers: Mapping[str, str] | None = None, body: Any = None) -> Kind:
    """Which branch of the error tree an error response of ``provider`` belongs to."""
    if status == 401:
        return "auth"
    if status == 429 or status >= 500:
        return "transient"
    rules = _rules(provider)
    if rules.is_transient is not None and rules.is_transient(status, _lower(headers), body):
        return "transient"
    return "permanent"


def retry_after_of(provider: str, status: int | None, headers: Mapping[str, str] | None) -> float | None:
    """Seconds ``provider`` asks to wait before the next try (None: it does not say)."""
    rules = _rules(provider)
    lowered = _lower(headers)
    wait = rules.retry_after(lowered) if rules.retry_after is not None else None
    if wait is None:
        wait = parse_retry_after(lowered.get("retry-after"))
    if wait is None and status == 429:
        wait = rules.rate_limit_wait
    return wait


def error_of_kind(
    kind: Kind,
    provider: str,
    message: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    credential: str | None = None,
) -> ProviderError:
    """The node error of one classified failure (the constructor every provider shares)."""
    message = message[:MESSAGE_LIMIT]
    if kind == "auth":
        return AuthError(
            f"{title(provider)} refused the credential: {message}",
            provider=provider,
            credential=credential,
            status=status,
        )
    if kind == "transient":
        return TransientError(
            message, provider=provider, status=status, retry_after=retry_after_of(provider, status, headers)
        )
    return ProviderError(message, provider=provider, status=status)


def error_for_status(
    provider: str,
    status: int,
    *,
    message: str,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    credential: str | None = None,
    request: str | None = None,
    credentialed: bool = True,
) -> ProviderError:
    """The node error for an error response of ``provider`` (see the table above).

    ``message`` is the provider's own text; ``body`` the parsed JSON body (for a provider's
    rules); ``credential`` the credential's name (an AuthError says to reconnect it);
    ``request`` what was asked for ("GET /v0/app1/Tasks/rec1"), named in a 404 when the
    message does not already say it. ``credentialed=False`` (the generic HTTP node, which sends
    no credential of ours) makes a 401 an ordinary ProviderError.
    """
    kind = classify(provider, status, headers, body)
    if kind == "auth" and not credentialed:
        kind = "permanent"
    message = message.strip() or f"HTTP {status}"
    if status == 404 and request and request not in message:
        message = f"{message} ({request})"
    return error_of_kind(kind, provider, message, status=status, headers=headers, credential=credential)


def timeout_error(provider: str, seconds: float) -> TransientError:
    """A request to ``provider`` took longer than ``seconds``."""
    return TransientError(f"{title(provider)} timed out after {seconds:g}s", provider=provider)


def connection_error(provider: str, exc: BaseException) -> TransientError:
    """``provider`` could not be reached (refused, reset, DNS)."""
    return TransientError(f"cannot reach {title(provider)}: {type(exc).__name__}", provider=provider)


def too_deep(provider: str) -> ProviderError:
    """An SDK parsed a hostile body nested thousands deep (a RecursionError)."""
    return ProviderError(f"{title(provider)} answered JSON nested too deeply to read", provider=provider)
