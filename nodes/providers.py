"""The provider registry: one descriptor per external service the node families talk to.

A family declares its provider once, in its transport (``PROVIDER = register_provider(...)``),
and everything that used to keep its own list of providers reads :data:`PROVIDERS` instead:
the runner's default rate limits (``flows.rate_limits``), the OAuth defaults of
``/flow connect`` (``switchboard.oauth_settings``), the names shown to people (the bot, the
CLI's help) and the error mapping (:mod:`nodes.provider_errors`, through :class:`ErrorRules`).

A descriptor holds only facts about the provider, never a setting: operators override base
URLs per credential and OAuth clients with ``SWITCHBOARD_OAUTH_<NAME>_*`` (read by
``switchboard.settings`` at the edge), never here.

Registration fails loudly on a second descriptor under the same name; a lookup of an unknown
name raises :class:`UnknownProviderError` listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class OAuth:
    """A provider's well-known OAuth 2 endpoints and the scopes its nodes need."""

    authorize_url: str
    token_url: str
    scopes: tuple[str, ...] = ()
    #: Extra query parameters of the authorize URL (Google only returns a refresh token with these).
    authorize_params: Mapping[str, str] = field(default_factory=dict)


#: ``(status, headers, parsed body) -> True`` when an error response other than 429/5xx is
#: worth retrying (Google's 403 ``rateLimitExceeded``, GitHub's 403 with no quota left).
TransientRule = Callable[[int, Mapping[str, str], Any], bool]
#: ``headers -> seconds`` to wait before retrying, or None when the headers do not say.
RetryAfterRule = Callable[[Mapping[str, str]], float | None]


@dataclass(frozen=True)
class ErrorRules:
    """Where a provider's errors differ from the common ladder of :mod:`nodes.provider_errors`."""

    #: Marks more error responses as transient than 429 and 5xx.
    is_transient: TransientRule | None = None
    #: Reads the wait from the headers (default: ``Retry-After``).
    retry_after: RetryAfterRule | None = None
    #: Seconds to wait after a 429 that names no wait (Airtable documents 30 s of quiet).
    rate_limit_wait: float | None = None


@dataclass(frozen=True)
class Provider:
    """One external service: its name (the ``credential=`` kind of its nodes), how people call
    it, where it lives, how fast nodes may call it, how users connect it and how its errors read."""

    name: str
    title: str
    #: The API's base URL when a credential names none.
    base_url: str
    #: Requests a second per credential when a node declares no ``rate_limit`` (None: unlimited).
    per_second: float | None = None
    #: Seconds one request may take.
    timeout: float = 30.0
    #: How ``/flow connect`` sends users to the provider (None: no OAuth; tokens are pasted).
    oauth: OAuth | None = None
    errors: ErrorRules = field(default_factory=ErrorRules)
    #: Who talks to it, for help texts ("ai.*").
    nodes: str = ""


class UnknownProviderError(LookupError):
    """No provider is registered under that name."""


class DuplicateProviderError(ValueError):
    """A provider with that name is already registered."""


_PROVIDERS: dict[str, Provider] = {}
#: Every registered provider by name (read-only; add one with :func:`register_provider`).
PROVIDERS: Mapping[str, Provider] = MappingProxyType(_PROVIDERS)


def register_provider(provider: Provider) -> Provider:
    """Register ``provider`` under its name and return it; a second one of that name raises."""
    if provider.name in _PROVIDERS:
        raise DuplicateProviderError(f"provider {provider.name!r} is already registered")
    _PROVIDERS[provider.name] = provider
    return provider


def get_provider(name: str) -> Provider:
    """The provider registered as ``name``; :class:`UnknownProviderError` lists the known ones."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(_PROVIDERS)) or "none"
        raise UnknownProviderError(f"unknown provider {name!r} (known: {known})") from None


def find_provider(name: str | None) -> Provider | None:
    """The provider registered as ``name``, or None."""
    return _PROVIDERS.get(name) if name else None


def title(name: str) -> str:
    """How a provider is named to people ("Google Drive" for ``gdrive``); an unknown name as is."""
    found = _PROVIDERS.get(name)
    return found.title if found else name
