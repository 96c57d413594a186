"""API tokens from the client (``client.tokens``): create, list, revoke, and authenticate a call.

A token looks like ``sbt_<43 URL-safe characters>`` (32 random bytes). It is shown once, when
created, and stored only as its SHA-256 (:mod:`storage.api_tokens`). Each token has

- a **scope**: ``read`` reads workflows and runs; ``run`` also starts, cancels and retries runs;
  ``admin`` does everything, on every workflow;
- optionally **workflows** it is limited to (``read`` and ``run`` tokens; none: every workflow);
- optionally an **owner**, a Slack user id: the token then acts as that user, so the
  workflow's ``permissions`` apply to it as they apply to that user in Slack;
- optionally an **expiry**.

:meth:`ApiTokens.authenticate` turns the secret a caller presents into an :class:`ApiToken`, or
raises :class:`TokenRefusedError` saying why (missing, unknown, expired, revoked); the HTTP API
audits every refusal.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.api_tokens import ApiTokenError, ApiTokenStore, StoredToken
from storage.idempotency import sha256

__all__ = ["SCOPES", "ApiToken", "ApiTokenError", "ApiTokens", "TokenRefusedError", "parse_duration"]

Scope = Literal["read", "run", "admin"]
#: Every scope, each allowing what the ones before it allow.
SCOPES: tuple[Scope, ...] = ("read", "run", "admin")
PREFIX = "sbt_"
#: What a token the API would accept looks like (anything else is refused before a lookup).
TOKEN_PATTERN = re.compile(r"sbt_[A-Za-z0-9_-]{43}")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{1,30}")
_DURATION = re.compile(r"(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: How stale ``last_used_at`` may get before a use writes it again (one write a minute per token).
TOUCH_EVERY = timedelta(minutes=1)


class TokenRefusedError(PermissionError):
    """A call's token is missing, unknown, expired or revoked; ``name`` is the token's when known."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or ``2w`` as a timedelta; ValueError names the accepted forms."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration: use a positive number and m, h, d or w (e.g. 30d)")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def new_token() -> str:
    """A fresh token: ``sbt_`` and 32 random bytes, URL-safe base64."""
    return PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiToken:
    """An authenticated token: what the call presenting it may do."""

    name: str
    scope: Scope
    workflows: tuple[str, ...]
    owner: str | None
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool = False

    @property
    def actor(self) -> str:
        """Who acts, in run records and the audit log: the owner as in Slack, else the token."""
        return f"slack:{self.owner}" if self.owner else f"api:{self.name}"

    def allows(self, needed: Scope) -> bool:
        """Whether the token's scope covers ``needed``."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def covers(self, workflow: str) -> bool:
        """Whether the token may touch ``workflow`` at all (its ``--workflow`` list)."""
        return self.scope == "admin" or not self.workflows or workflow in self.workflows

    def to_dict(self) -> dict[str, object]:
        """What ``tokens list`` shows (never a secret or a hash)."""
        return {
            "name": self.name,
            "scope": self.scope,
            "workflows": list(self.workflows),
            "owner": self.owner,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
        }


def _token(stored: StoredToken) -> ApiToken:
    scope: Scope = stored.scope if stored.scope in SCOPES else "read"
    return ApiToken(
        name=stored.name,
        scope=scope,
        workflows=stored.workflows,
        owner=stored.owner,
        expires_at=_aware(stored.expires_at),
        created_at=_aware(stored.created_at) or stored.created_at,
        last_used_at=_aware(stored.last_used_at),
        revoked=stored.revoked_at is not None,
    )


def _aware(at: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class ApiTokens:
    """API tokens (``client.tokens``)."""

    def __init__(self, engine: AsyncEngine, actor: str) -> None:
        self._store = ApiTokenStore(engine)
        self._actor = actor

    async def create(
        self,
        name: str,
        *,
        scope: str,
        workflows: list[str] | None = None,
        owner: str | None = None,
        expires_in: timedelta | None = None,
        actor: str | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; returns it and its secret (shown this once, stored only hashed).

        ValueError says what is wrong with an argument; :class:`ApiTokenError` when a live
        token has the name.
        """
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"token name {name[:100]!r}: use lowercase letters, digits, '.', '_' and '-' (max 100)")
        if scope not in SCOPES:
            raise ValueError(f"scope {scope[:20]!r}: choose read, run or admin")
        listed = list(dict.fromkeys(workflows or []))
        if listed and scope == "admin":
            raise ValueError("an admin token covers every workflow; --workflow applies to read and run tokens")
        if owner is not None and not _SLACK_USER.fullmatch(owner):
            raise ValueError(f"owner {owner[:40]!r} is not a Slack user id (U… or W…)")
        if expires_in is not None and expires_in <= timedelta(0):
            raise ValueError("an expiry must be in the future")
        secret = new_token()
        expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
        stored = await self._store.create(
            name,
            token_hash=sha256(secret),
            scope=scope,
            workflows=listed,
            owner=owner,
            expires_at=expires_at,
            actor=actor or self._actor,
        )
        return _token(stored), secret

    async def list(self) -> list[ApiToken]:
        """Every token (revoked ones too), by name; never their secrets."""
        return [_token(stored) for stored in await self._store.list()]

    async def revoke(self, name: str, *, actor: str | None = None) -> None:
        """Revoke a token: every call presenting it is refused from now on."""
        await self._store.revoke(name, actor=actor or self._actor)

    async def authenticate(self, presented: str | None, *, now: datetime | None = None) -> ApiToken:
        """The token ``presented`` (the secret a caller sent), or :class:`TokenRefusedError`."""
        if not presented:
            raise TokenRefusedError("no API token: send `Authorization: Bearer sbt_...` (switchboard tokens create)")
        if not TOKEN_PATTERN.fullmatch(presented):
            raise TokenRefusedError("that is not a Switchboard API token (they look like sbt_ and 43 characters)")
        digest = sha256(presented)
        stored = await self._store.by_hash(digest)
        if stored is None or not hmac.compare_digest(stored.token_hash, digest):
            raise TokenRefusedError("unknown API token")
        token = _token(stored)
        now = now or datetime.now(UTC)
        if token.revoked:
            raise TokenRefusedError(f"API token {token.name!r} was revoked", name=token.name)
        if token.expires_at is not None and token.expires_at <= now:
            raise TokenRefusedError(
                f"API token {token.name!r} expired at {token.expires_at:%Y-%m-%d %H:%M} UTC", name=token.name
            )
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            await self._store.touch(token.name, now)
            token = replace(token, last_used_at=now)
        return token
