"""The provider registry: every registered provider has a descriptor, a fake and the error suite.

Driven by ``nodes.providers.PROVIDERS``: a new provider without a case in
``tests/nodes/provider_cases.py`` (its fake and one node call) fails here.
"""

from __future__ import annotations

import pytest

from flows import rate_limits
from nodes.providers import PROVIDERS, DuplicateProviderError, Provider, UnknownProviderError, get_provider
from nodes.providers import register_provider as register
from nodes.registry import REGISTRY
from switchboard.oauth_settings import known_oauth_providers, read_provider
from tests.nodes.provider_cases import CASES

NAMES = sorted(PROVIDERS)


def test_every_registered_provider_is_covered_by_the_error_suite() -> None:
    assert sorted(CASES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_provider_has_a_descriptor_and_a_fake(name: str) -> None:
    provider = get_provider(name)
    assert provider.name == name and provider.title and provider.base_url.startswith("https://")
    assert provider.timeout > 0
    assert CASES[name].fake.__module__.startswith("tests.fakes.")
    assert REGISTRY.get(CASES[name].node).credential == name


def test_every_credential_kind_a_node_names_is_a_registered_provider() -> None:
    kinds = {spec.credential for spec in REGISTRY if spec.credential}
    assert kinds <= set(PROVIDERS), f"nodes name unregistered providers: {sorted(kinds - set(PROVIDERS))}"


def test_a_duplicate_or_unknown_provider_fails_loudly() -> None:
    with pytest.raises(DuplicateProviderError, match="github"):
        register(Provider("github", "GitHub again", "https://example.invalid"))
    with pytest.raises(UnknownProviderError, match="known: airtable"):
        get_provider("githib")


@pytest.mark.parametrize("name", NAMES)
def test_rate_limit_defaults_come_from_the_descriptor(name: str) -> None:
    limit = rate_limits.limit_for(workflow="w", node_id="n", provider=name, credential="c", declared=None)
    per_second = get_provider(name).per_second
    assert (limit.per_second if limit else None) == per_second


def test_oauth_defaults_come_from_the_descriptor() -> None:
    assert known_oauth_providers() == sorted(n for n, p in PROVIDERS.items() if p.oauth is not None)
    for name in known_oauth_providers():
        oauth = get_provider(name).oauth
        assert oauth is not None
        configured = read_provider(name, {f"SWITCHBOARD_OAUTH_{name.upper()}_CLIENT_ID": "id"})
        assert configured is not None
        assert (configured.authorize_url, configured.token_url, configured.scopes) == (
            oauth.authorize_url,
            oauth.token_url,
            oauth.scopes,
        )
        assert dict(configured.authorize_params) == dict(oauth.authorize_params)
