"""Credentials, encrypted at rest; resolved (and OAuth-refreshed) only when a node asks.

A credential's secret is a token, or OAuth material (``access_token``, ``refresh_token``,
``expires_at``, ``client_id``, ``client_secret``, ``token_url``), stored as one Fernet
ciphertext. Nothing here logs or returns a secret except :meth:`CredentialStore.resolve`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.audit import record
from storage.crypto import Keyring
from storage.db import sessionmaker
from storage.models import CredentialRow, utcnow

#: OAuth access tokens are refreshed this long before they expire.
REFRESH_MARGIN = timedelta(seconds=120)


class CredentialError(RuntimeError):
    """A credential is missing, of the wrong provider, or cannot be refreshed."""


class CredentialExistsError(CredentialError):
    """A credential with that name (and owner) exists already."""


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a credential: never the secret."""

    name: str
    owner: str
    provider: str
    base_url: str | None
    scopes: list[str]
    expires_at: datetime | None
    key_id: str
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner or None,
            "provider": self.provider,
            "base_url": self.base_url,
            "scopes": self.scopes,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "key_id": self.key_id,
            "updated_at": self.updated_at.isoformat(),
        }


def parse_secret(text: str) -> dict[str, Any]:
    """A token, or a JSON object of OAuth material."""
    stripped = text.strip()
    if not stripped:
        raise CredentialError("the secret is empty")
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CredentialError(f"the secret looks like JSON but does not parse: {exc.msg}") from None
        if not isinstance(data, dict) or not ({"token", "access_token"} & data.keys()):
            raise CredentialError("a JSON secret needs `token` or `access_token`")
        return data
    return {"token": stripped}


def _expiry(data: dict[str, Any]) -> datetime | None:
    value = data.get("expires_at")
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class CredentialStore:
    """The ``credentials`` table."""

    def __init__(self, engine: AsyncEngine, keyring: Keyring, *, http: httpx.AsyncClient | None = None) -> None:
        self.engine = engine
        self.keyring = keyring
        self.sessions = sessionmaker(engine)
        self.http = http

    def _seal(self, data: dict[str, Any]) -> str:
        return self.keyring.encrypt(json.dumps(data).encode())

    def _open(self, row: CredentialRow) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.keyring.decrypt(row.secret))
        return data

    async def add(
        self,
        name: str,
        *,
        provider: str,
        secret: str,
        actor: str,
        owner: str | None = None,
        base_url: str | None = None,
        scopes: list[str] | None = None,
        replace: bool = False,
    ) -> CredentialInfo:
        """Encrypt and store a credential; ``replace``: an existing one of that name and owner is
        removed in the same transaction (reconnecting an account)."""
        data = parse_secret(secret)
        row = CredentialRow(
            name=name,
            owner=owner or "",
            provider=provider,
            base_url=base_url,
            scopes=scopes or [],
            secret=self._seal(data),
            key_id=self.keyring.primary_id,
            expires_at=_expiry(data),
        )
        try:
            async with self.sessions() as session, session.begin():
                replaced = False
                if replace:
                    deleted = await session.execute(
                        delete(CredentialRow).where(CredentialRow.name == name, CredentialRow.owner == (owner or ""))
                    )
                    replaced = bool(getattr(deleted, "rowcount", 0))
                session.add(row)
                await record(
                    session,
                    actor=actor,
                    action="credential-replace" if replaced else "credential-add",
                    target=_label(name, owner),
                    detail={"provider": provider},
                )
        except IntegrityError:
            raise CredentialExistsError(
                f"credential {_label(name, owner)} exists; remove it first to replace it"
            ) from None
        return _info(row)

    async def list(self) -> list[CredentialInfo]:
        async with self.sessions() as session:
            rows = (
                await session.execute(select(CredentialRow).order_by(CredentialRow.name, CredentialRow.owner))
            ).scalars()
            return [_info(r) for r in rows]

    async def remove(self, name: str, *, actor: str, owner: str | None = None) -> None:
        async with self.sessions() as session, session.begin():
            deleted = await session.execute(
                delete(CredentialRow).where(CredentialRow.name == name, CredentialRow.owner == (owner or ""))
            )
            if not getattr(deleted, "rowcount", 0):
                raise CredentialError(f"no credential {_label(name, owner)}")
            await record(session, actor=actor, action="credential-remove", target=_label(name, owner), detail={})

    async def rotate_key(self, *, actor: str) -> int:
        """Re-encrypt every credential under the primary key; returns how many."""
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(select(CredentialRow).with_for_update())).scalars().all()
            for row in rows:
                row.secret = self.keyring.rotate(row.secret)
                row.key_id = self.keyring.primary_id
                row.updated_at = utcnow()
            await record(
                session,
                actor=actor,
                action="credential-rotate",
                target="*",
                detail={"count": len(rows), "key_id": self.keyring.primary_id},
            )
        return len(rows)

    async def resolve(
        self, name: str, provider: str | None = None, *, owner: str | None = None, rejected: str | None = None
    ) -> dict[str, Any]:
        """The decrypted credential ``name``: the owner's own if they have one, else the shared
        one. OAuth tokens close to expiry are refreshed first, once, under a row lock.

        ``rejected`` is an access token the provider refused (401): the credential is refreshed
        now unless its stored token is already a different one (another node refreshed it)."""
        async with self.sessions() as session:
            rows = (await session.execute(select(CredentialRow).where(CredentialRow.name == name))).scalars().all()
        by_owner = {r.owner: r for r in rows}
        row = by_owner.get(owner or "") or by_owner.get("")
        if row is None:
            raise CredentialError(f"no credential named {name!r} (add it with `switchboard credentials add {name}`)")
        if provider and row.provider != provider:
            raise CredentialError(
                f"credential {name!r} is for {row.provider}, but the node needs a {provider} credential"
            )
        data = self._open(row)
        expires = _aware(row.expires_at)
        if rejected is not None:
            if not data.get("refresh_token"):
                raise CredentialError(f"credential {name!r} was refused by {row.provider}; reconnect it")
            data = await self._refresh(row.id, name, rejected=rejected)
        elif data.get("refresh_token") and expires is not None and expires - utcnow() < REFRESH_MARGIN:
            data = await self._refresh(row.id, name)
        return {"name": name, "provider": row.provider, "base_url": row.base_url, "scopes": row.scopes, **data}

    async def _refresh(self, row_id: int, name: str, *, rejected: str | None = None) -> dict[str, Any]:
        async with self.sessions() as session, session.begin():
            row = await session.get(CredentialRow, row_id, with_for_update=True)
            if row is None:
                raise CredentialError(f"credential {name!r} was removed")
            data = self._open(row)
            expires = _aware(row.expires_at)
            if rejected is not None:
                if data.get("access_token") != rejected:
                    return data  # another node refreshed the refused token while we waited
            elif expires is not None and expires - utcnow() >= REFRESH_MARGIN:
                return data  # another run refreshed it while we waited for the lock
            token_url = data.get("token_url")
            if not token_url:
                raise CredentialError(
                    f"credential {name!r} has expired and has no token_url to refresh it; reconnect it"
                )
            fresh = await self._token_request(name, token_url, data)
            data["access_token"] = fresh["access_token"]
            if fresh.get("refresh_token"):
                data["refresh_token"] = fresh["refresh_token"]
            if fresh.get("expires_in"):
                data["expires_at"] = (utcnow() + timedelta(seconds=float(fresh["expires_in"]))).isoformat()
            row.secret = self._seal(data)
            row.key_id = self.keyring.primary_id
            row.expires_at = _expiry(data)
            row.updated_at = utcnow()
            return data

    async def _token_request(self, name: str, token_url: str, data: dict[str, Any]) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": data["refresh_token"],
            "client_id": data.get("client_id", ""),
            "client_secret": data.get("client_secret", ""),
        }
        client = self.http or httpx.AsyncClient(timeout=15.0)
        try:
            response = await client.post(token_url, data=form)
        except httpx.HTTPError as exc:
            raise CredentialError(f"refreshing credential {name!r} failed: {type(exc).__name__}") from None
        finally:
            if self.http is None:
                await client.aclose()
        if response.status_code >= 400:
            raise CredentialError(f"refreshing credential {name!r} was refused ({response.status_code}); reconnect it")
        payload: dict[str, Any] = response.json()
        if "access_token" not in payload:
            raise CredentialError(f"refreshing credential {name!r} returned no access_token; reconnect it")
        return payload


def _label(name: str, owner: str | None) -> str:
    return f"{name!r} of {owner}" if owner else repr(name)


def _info(row: CredentialRow) -> CredentialInfo:
    return CredentialInfo(
        name=row.name,
        owner=row.owner,
        provider=row.provider,
        base_url=row.base_url,
        scopes=list(row.scopes or []),
        expires_at=_aware(row.expires_at),
        key_id=row.key_id,
        updated_at=row.updated_at,
    )
