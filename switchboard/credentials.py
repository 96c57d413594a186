"""Credentials from the client: add, list, remove, rotate the key; and the resolver runs use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from nodes.context import CredentialResolver
from nodes.errors import AuthError
from storage.credentials import CredentialError, CredentialInfo, CredentialStore
from storage.crypto import load_keyring
from storage.slack_installations import SlackInstallationStore
from switchboard.settings import Settings

__all__ = ["CredentialError", "CredentialInfo", "Credentials", "credential_store", "resolver_for"]


def credential_store(engine: AsyncEngine, settings: Settings) -> CredentialStore:
    """The encrypted credential store on ``engine``, with the key ring of ``settings``."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return CredentialStore(engine, load_keyring(secret, settings.home_dir))


def credential_owner(triggered_by: str | None) -> str | None:
    """The credential owner of a run's ``triggered_by``: ``slack:U123`` (the bot) -> ``U123``;
    a bare user id (``arun(triggered_by="U123")``) is the owner itself.

    Other actors (``cli:alice``, ``webhook:...``) have no credentials of their own.
    """
    if not triggered_by:
        return None
    scheme, sep, user = triggered_by.partition(":")
    if not sep:
        return triggered_by
    return (user or None) if scheme == "slack" else None


#: Credentials Switchboard keeps for itself (webhook signing secrets): never handed to a node.
INTERNAL_PROVIDERS = frozenset({"webhook"})


def resolver_for(engine: AsyncEngine, settings: Settings, triggered_by: str | None) -> CredentialResolver:
    """What a run's nodes call: the triggering Slack user's own credential first (stored with
    ``owner=<Slack user id>``, e.g. by ``/flow connect``), then the shared one.

    The key is loaded on the first credential a node asks for, so runs without credentials
    never touch it.
    """
    owner = credential_owner(triggered_by)
    stores: list[CredentialStore] = []

    async def resolve(name: str, provider: str | None, *, rejected: str | None = None) -> Mapping[str, Any]:
        if not stores:
            stores.append(credential_store(engine, settings))
        try:
            resolved = await stores[0].resolve(name, provider, owner=owner, rejected=rejected)
        except CredentialError as exc:
            raise AuthError(str(exc), provider=provider or "credentials", credential=name) from None
        if resolved.get("provider") in INTERNAL_PROVIDERS:
            raise AuthError(
                f"credential {name!r} belongs to Switchboard itself, not to nodes",
                provider=provider or "credentials",
                credential=name,
            )
        return resolved

    return resolve


class Credentials:
    """Encrypted credentials (``client.credentials``); secrets go in, never come out here."""

    def __init__(self, engine: AsyncEngine, settings: Settings, actor: str) -> None:
        self._engine = engine
        self._settings = settings
        self._actor = actor

    def _store(self) -> CredentialStore:
        return credential_store(self._engine, self._settings)

    async def add(
        self,
        name: str,
        *,
        provider: str,
        secret: str,
        owner: str | None = None,
        base_url: str | None = None,
        scopes: list[str] | None = None,
        actor: str | None = None,
        replace: bool = False,
    ) -> CredentialInfo:
        """Encrypt and store a credential (``secret``: a token, or OAuth material as JSON);
        ``replace``: over an earlier one of the same name and owner."""
        return await self._store().add(
            name,
            provider=provider,
            secret=secret,
            owner=owner,
            base_url=base_url,
            scopes=scopes,
            actor=actor or self._actor,
            replace=replace,
        )

    async def list(self) -> list[CredentialInfo]:
        """Names, providers, owners and key ids; never secrets."""
        return await self._store().list()

    async def remove(self, name: str, *, owner: str | None = None, actor: str | None = None) -> None:
        """Delete a credential (``owner``: that user's own one)."""
        await self._store().remove(name, owner=owner, actor=actor or self._actor)

    async def rotate_key(self, *, actor: str | None = None) -> int:
        """Re-encrypt every credential (and the Slack workspaces' bot tokens) under the first key
        of ``SWITCHBOARD_SECRET_KEY``; returns how many."""
        store = self._store()
        count = await store.rotate_key(actor=actor or self._actor)
        return count + await SlackInstallationStore(store.engine, store.keyring).rotate_key()

    def resolver(self, triggered_by: str | None) -> CredentialResolver:
        """What a run's nodes call to get credentials (see :func:`resolver_for`)."""
        return resolver_for(self._engine, self._settings, triggered_by)
