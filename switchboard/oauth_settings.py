"""OAuth 2 client settings per provider, for ``/flow connect PROVIDER``.

Read from the environment by :meth:`switchboard.settings.Settings.oauth_provider`::

    SWITCHBOARD_OAUTH_GITHUB_CLIENT_ID=...        # required: a provider without it is off
    SWITCHBOARD_OAUTH_GITHUB_CLIENT_SECRET=...
    SWITCHBOARD_OAUTH_GITHUB_SCOPES="repo read:org" # default: the provider's usual scopes
    SWITCHBOARD_OAUTH_GITHUB_AUTHORIZE_URL=...    # default: the provider's own
    SWITCHBOARD_OAUTH_GITHUB_TOKEN_URL=...        # default: the provider's own
    SWITCHBOARD_OAUTH_GITHUB_API_URL=...          # stored as the credential's base_url (optional)

A provider registered with an OAuth descriptor (``nodes.providers``: github, gdrive, hubspot,
airtable) has default URLs and scopes; any other name works when its authorize and token URLs
are set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from nodes.providers import PROVIDERS, OAuth, find_provider

ENV_PREFIX = "SWITCHBOARD_OAUTH_"
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def oauth_defaults(name: str) -> OAuth | None:
    """The registered provider ``name``'s OAuth endpoints and scopes (None: it has none)."""
    found = find_provider(name)
    return found.oauth if found is not None else None


def known_oauth_providers() -> list[str]:
    """The registered providers with OAuth defaults, sorted (connectable once a client id is set)."""
    return sorted(name for name, provider in PROVIDERS.items() if provider.oauth is not None)


@dataclass(frozen=True)
class OAuthProvider:
    """One provider's OAuth client: where to send the user, where to trade the code, as whom."""

    name: str
    client_id: str
    client_secret: SecretStr
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    #: The provider API's base URL, stored with the credential (GitHub Enterprise, a fake).
    api_url: str | None = None


def read_provider(name: str, environ: Mapping[str, str] | None = None) -> OAuthProvider | None:
    """The OAuth client settings of ``name`` from the environment; None when not configured."""
    if not PROVIDER_NAME.match(name):
        return None
    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{name.upper()}_"

    def get(key: str) -> str | None:
        value = env.get(prefix + key, "").strip()
        return value or None

    client_id = get("CLIENT_ID")
    defaults = oauth_defaults(name)
    authorize_url = get("AUTHORIZE_URL") or (defaults.authorize_url if defaults else None)
    token_url = get("TOKEN_URL") or (defaults.token_url if defaults else None)
    if not client_id or not authorize_url or not token_url:
        return None
    scopes_text = get("SCOPES")
    scopes = tuple(scopes_text.replace(",", " ").split()) if scopes_text else (defaults.scopes if defaults else ())
    return OAuthProvider(
        name=name,
        client_id=client_id,
        client_secret=SecretStr(get("CLIENT_SECRET") or ""),
        authorize_url=authorize_url,
        token_url=token_url,
        scopes=scopes,
        authorize_params=dict(defaults.authorize_params) if defaults else {},
        api_url=get("API_URL"),
    )


def configured_providers(environ: Mapping[str, str] | None = None) -> list[str]:
    """The names of the providers whose OAuth client is configured, sorted."""
    env = os.environ if environ is None else environ
    names = {
        key.removeprefix(ENV_PREFIX).removesuffix("_CLIENT_ID").lower()
        for key in env
        if key.startswith(ENV_PREFIX) and key.endswith("_CLIENT_ID")
    }
    return sorted(name for name in names if read_provider(name, env) is not None)
