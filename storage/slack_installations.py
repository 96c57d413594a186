"""Slack workspaces that installed the app (multi-workspace mode), on our database.

One row per installer (enterprise, workspace, user); the tokens (bot, user, refresh tokens and
the incoming-webhook URL) are encrypted with the credential keyring (:mod:`storage.crypto`),
everything else (ids, names, scopes, expiry times) is plain JSON. This is slack_sdk's
``AsyncInstallationStore`` (Bolt's authorization reads it on every request), plus
:meth:`SlackInstallationStore.bot_token` for the bot's own posts.

The OAuth ``state`` of ``/slack/install`` lives in the ``oauth_states`` table of
``/flow connect`` (hashed, single use, ten minutes), under its own provider name.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from storage.crypto import Keyring
from storage.db import retry_conflicts, sessionmaker
from storage.models import Base
from storage.oauth_states import OAuthStateStore

logger = logging.getLogger(__name__)

#: The ``oauth_states.provider`` of an app installation's state.
INSTALL_PROVIDER = "slack-install"

#: Installation fields kept encrypted.
SECRET_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token", "incoming_webhook_url")
#: Installation fields kept in plain JSON.
DETAIL_FIELDS = (
    "app_id",
    "enterprise_name",
    "enterprise_url",
    "team_name",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_token_expires_at",
    "user_scopes",
    "user_token_expires_at",
    "incoming_webhook_channel",
    "incoming_webhook_channel_id",
    "incoming_webhook_configuration_url",
    "token_type",
    "custom_values",
)


class SlackInstallationRow(Base):
    """One installation of the app. ``enterprise_id`` and ``team_id`` are "" when absent (an
    org-wide install has no team)."""

    __tablename__ = "slack_installations"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "team_id", "user_id", name="uq_slack_installations_installer"),
        Index("ix_slack_installations_workspace", "enterprise_id", "team_id", "installed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(String(40))
    is_enterprise_install: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(16))
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def _workspace(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> tuple[str, str]:
    """The (enterprise, team) key of a workspace; an org-wide install is keyed by its enterprise."""
    return enterprise_id or "", "" if is_enterprise_install else team_id or ""


class SlackInstallationStore(AsyncInstallationStore):
    """The ``slack_installations`` table, tokens encrypted with ``keyring``."""

    def __init__(self, engine: AsyncEngine, keyring: Keyring) -> None:
        self.sessions = sessionmaker(engine)
        self.keyring = keyring

    @property
    def logger(self) -> logging.Logger:
        return logger

    # --- writing ------------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        """Store (or replace) the installation of its installer, tokens encrypted."""
        enterprise, team = _workspace(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        user = installation.user_id or ""
        values = installation.to_dict_for_copying()
        details = {name: values.get(name) for name in DETAIL_FIELDS}
        details["bot_token_expires_at"] = installation.bot_token_expires_at
        details["user_token_expires_at"] = installation.user_token_expires_at
        details["bot_scopes"] = list(installation.bot_scopes or [])
        details["user_scopes"] = list(installation.user_scopes or [])
        secrets = {name: getattr(installation, name) for name in SECRET_FIELDS}
        installed_at = datetime.fromtimestamp(installation.installed_at, tz=UTC)

        async def write() -> None:
            async with self.sessions() as session, session.begin():
                query = select(SlackInstallationRow).where(
                    SlackInstallationRow.enterprise_id == enterprise,
                    SlackInstallationRow.team_id == team,
                    SlackInstallationRow.user_id == user,
                )
                row = (await session.execute(query)).scalar()
                if row is None:
                    row = SlackInstallationRow(enterprise_id=enterprise, team_id=team, user_id=user)
                    session.add(row)
                row.is_enterprise_install = bool(installation.is_enterprise_install)
                row.details = details
                row.secret = self.keyring.encrypt(json.dumps(secrets).encode())
                row.key_id = self.keyring.primary_id
                row.installed_at = installed_at

        await retry_conflicts(write, what=f"the Slack installation of {team or enterprise}")
        logger.info("Slack workspace %s (%s) installed the app", team or enterprise, installation.team_name)

    async def async_save_bot(self, bot: Bot) -> None:
        """A rotated bot token: every installation of the workspace gets it."""
        enterprise, team = _workspace(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        async with self.sessions() as session, session.begin():
            for row in (await session.execute(self._workspace_query(enterprise, team))).scalars():
                secrets = self._secrets(row)
                secrets.update(bot_token=bot.bot_token, bot_refresh_token=bot.bot_refresh_token)
                row.secret = self.keyring.encrypt(json.dumps(secrets).encode())
                row.key_id = self.keyring.primary_id
                row.details = {
                    **row.details,
                    "bot_token_expires_at": bot.bot_token_expires_at,
                    "bot_scopes": list(bot.bot_scopes),
                }

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the workspace's bot token (the app was uninstalled or its tokens revoked)."""
        enterprise, team = _workspace(enterprise_id, team_id, team_id is None)
        async with self.sessions() as session, session.begin():
            for row in (await session.execute(self._workspace_query(enterprise, team))).scalars():
                secrets = self._secrets(row)
                secrets.update(bot_token=None, bot_refresh_token=None)
                if not secrets.get("user_token"):
                    await session.delete(row)
                    continue
                row.secret = self.keyring.encrypt(json.dumps(secrets).encode())
                row.key_id = self.keyring.primary_id

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Delete the workspace's installations (only ``user_id``'s, if given)."""
        enterprise, team = _workspace(enterprise_id, team_id, team_id is None)
        statement = delete(SlackInstallationRow).where(
            SlackInstallationRow.enterprise_id == enterprise, SlackInstallationRow.team_id == team
        )
        if user_id is not None:
            statement = statement.where(SlackInstallationRow.user_id == user_id)
        async with self.sessions() as session, session.begin():
            await session.execute(statement)

    # --- reading ------------------------------------------------------------------------------

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """``user_id``'s installation in the workspace (with the workspace's latest bot token),
        or without ``user_id`` the latest one."""
        enterprise, team = _workspace(enterprise_id, team_id, is_enterprise_install)
        async with self.sessions() as session:
            rows = list((await session.execute(self._workspace_query(enterprise, team))).scalars())
        if not rows:
            return None
        latest = self._installation(rows[0])
        if user_id is None:
            return latest
        mine = next((row for row in rows if row.user_id == user_id), None)
        if mine is None:
            return None
        installation = self._installation(mine)
        if latest.bot_token and latest.bot_token != installation.bot_token:
            for name in ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token"):
                setattr(installation, name, getattr(latest, name))
            installation.bot_token_expires_at = latest.bot_token_expires_at
        return installation

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        """The workspace's latest bot (token included), or None."""
        enterprise, team = _workspace(enterprise_id, team_id, is_enterprise_install)
        async with self.sessions() as session:
            rows = list((await session.execute(self._workspace_query(enterprise, team))).scalars())
        for row in rows:
            installation = self._installation(row)
            if installation.bot_token:
                return installation.to_bot()
        return None

    async def bot_token(self, team_id: str) -> str | None:
        """The bot token of workspace ``team_id`` (whatever its enterprise), or None if not installed."""
        query = (
            select(SlackInstallationRow)
            .where(SlackInstallationRow.team_id == team_id)
            .order_by(SlackInstallationRow.installed_at.desc(), SlackInstallationRow.id.desc())
        )
        async with self.sessions() as session:
            rows = list((await session.execute(query)).scalars())
        for row in rows:
            token = self._secrets(row).get("bot_token")
            if token:
                return str(token)
        return None

    async def teams(self) -> list[str]:
        """The ids of the installed workspaces (org-wide installs have none)."""
        query = select(SlackInstallationRow.team_id).where(SlackInstallationRow.team_id != "").distinct()
        async with self.sessions() as session:
            return sorted(str(team) for team in (await session.execute(query)).scalars())

    async def rotate_key(self) -> int:
        """Re-encrypt every installation's tokens under the keyring's first key; returns how many."""
        count = 0
        async with self.sessions() as session, session.begin():
            for row in (await session.execute(select(SlackInstallationRow))).scalars():
                if row.key_id != self.keyring.primary_id:
                    row.secret = self.keyring.rotate(row.secret)
                    row.key_id = self.keyring.primary_id
                    count += 1
        return count

    # --- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _workspace_query(enterprise: str, team: str) -> Any:
        return (
            select(SlackInstallationRow)
            .where(SlackInstallationRow.enterprise_id == enterprise, SlackInstallationRow.team_id == team)
            .order_by(SlackInstallationRow.installed_at.desc(), SlackInstallationRow.id.desc())
        )

    def _secrets(self, row: SlackInstallationRow) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.keyring.decrypt(row.secret))
        return value

    def _installation(self, row: SlackInstallationRow) -> Installation:
        details = dict(row.details)
        installed_at = row.installed_at if row.installed_at.tzinfo else row.installed_at.replace(tzinfo=UTC)
        return Installation(
            enterprise_id=row.enterprise_id or None,
            team_id=row.team_id or None,
            user_id=row.user_id,
            is_enterprise_install=row.is_enterprise_install,
            installed_at=installed_at.timestamp(),
            custom_values=details.pop("custom_values", None) or {},
            **details,
            **self._secrets(row),
        )


class SlackInstallStateStore(AsyncOAuthStateStore):
    """The ``state`` of ``/slack/install``: random, stored hashed, single use, ten minutes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.states = OAuthStateStore(engine)

    @property
    def logger(self) -> logging.Logger:
        return logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state for one install link."""
        state, _ = await self.states.create(slack_user="", provider=INSTALL_PROVIDER, credential="")
        return state

    async def async_consume(self, state: str) -> bool:
        """True once for a state this store issued less than ten minutes ago."""
        return await self.states.consume(state, provider=INSTALL_PROVIDER) is not None
