"""The node error tree.

Every failure a node can report is one of these; the runner decides retries from the class
alone, and providers map their own exceptions onto it at one seam (``raise ... from exc``)::

    NodeError                      any node failure; permanent unless a subclass says otherwise
    ├── NodeConfigError            bad params or a bad template; fixing the workflow fixes it
    ├── BudgetExceeded             the next model call would pass the run's budget; the run stops
    └── ProviderError              an upstream service said no (status, provider, message)
        ├── TransientError         429, 5xx, timeouts, connection errors: retried,
        │                          honouring ``retry_after`` when the provider sent one
        └── AuthError              the credential was refused; reconnect it

Only ``TransientError`` (and a node's own ``timeout``) is retried by the runner; everything
else fails the node at once with ``attempts == 1``.
"""

from __future__ import annotations

from datetime import UTC


class NodeError(Exception):
    """A node failed. Permanent: the runner does not retry it."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id

    def __str__(self) -> str:
        return self.message


class NodeConfigError(NodeError):
    """The node's params (or a template feeding them) are wrong; never retried."""


class BudgetExceeded(NodeError):
    """A model call was refused before it was made: it would take the run past its
    ``budget`` (USD or tokens). Never retried; the run fails with this message."""


class ProviderError(NodeError):
    """An external service refused or failed the request."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(message, node_id=node_id)
        self.provider = provider
        self.status = status

    def __str__(self) -> str:
        where = f"{self.provider} {self.status}" if self.status else self.provider
        return f"{where}: {self.message}"


class TransientError(ProviderError):
    """A failure worth retrying (rate limit, server error, timeout, connection reset)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, status=status, node_id=node_id)
        self.retry_after = retry_after


class AuthError(ProviderError):
    """The provider refused the credential; the user has to reconnect it."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        credential: str | None = None,
        status: int | None = None,
        node_id: str | None = None,
    ) -> None:
        if credential:
            message = f"{message} (reconnect credential '{credential}')"
        super().__init__(message, provider=provider, status=status, node_id=node_id)
        self.credential = credential


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
