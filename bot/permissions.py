"""Who may run, read or approve a workflow: Slack user ids, user-group ids and channel ids.

An entry ``U…``/``W…`` is a user, ``S…`` a user group (its members, via
``usergroups.users.list``), ``C…``/``G…`` a channel (its members, via
``conversations.members``). Admins (``SWITCHBOARD_SLACK_ADMINS``) may do anything; a
workflow without a list lets everyone. The rules per action are those of
:class:`flows.model.Permissions`: reading is ``read``, else ``run``, plus the approvers;
running implies reading.

Every listener builds one :class:`Access` per request: it asks Slack about each group or
channel at most once, however many workflows name it (``/flow list`` over fifty workflows that
all name ``S0OPS`` costs one ``usergroups.users.list``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from flows.model import Workflow

logger = logging.getLogger(__name__)

_SLACK_ID = re.compile(r"^[UWSCG][A-Z0-9]+$")


@dataclass
class Membership:
    """Who is in which user group or channel, each asked of Slack once (for one request)."""

    client: AsyncWebClient
    _known: dict[tuple[str, str], bool] = field(default_factory=dict)

    async def contains(self, entry: str, user: str) -> bool:
        """Whether ``user`` is a member of group or channel ``entry`` (an unknown one: no)."""
        key = (entry, user)
        if key not in self._known:
            self._known[key] = await self._ask(entry, user)
        return self._known[key]

    async def _ask(self, entry: str, user: str) -> bool:
        try:
            if entry.startswith("S"):
                response = await self.client.usergroups_users_list(usergroup=entry)
                return user in (response.get("users") or [])
            if entry.startswith(("C", "G")):
                cursor: str | None = None
                while True:
                    page = await self.client.conversations_members(channel=entry, cursor=cursor, limit=1000)
                    if user in (page.get("members") or []):
                        return True
                    cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                    if not cursor:
                        return False
        except SlackApiError as exc:  # an unknown group or channel grants nothing
            logger.warning("permission entry %s could not be checked: %s", entry, exc.response.get("error"))
        return False


async def is_permitted(
    client: AsyncWebClient,
    user: str,
    allowed: Iterable[str] | None,
    *,
    admins: Iterable[str] = (),
    membership: Membership | None = None,
) -> bool:
    """Whether ``user`` is an admin, or named by ``allowed`` directly or through a group or channel.

    ``allowed`` None or empty means everyone. ``membership`` remembers Slack's answers across
    calls (default: a fresh one).
    """
    if user in set(admins):
        return True
    entries = list(allowed or [])
    if not entries or user in entries:
        return True
    members = membership or Membership(client)
    for entry in entries:
        if entry.startswith(("S", "C", "G")) and await members.contains(entry, user):
            return True
    return False


def approvers_of(workflow: Workflow) -> list[str]:
    """Every id the workflow's approval steps name (they may read what they approve)."""
    named: list[str] = []
    for node in workflow.nodes:
        if node.type == "core.approval" and isinstance(node.params.get("approvers"), list):
            named += [e for e in node.params["approvers"] if isinstance(e, str) and _SLACK_ID.match(e)]
    return named


@dataclass
class Access:
    """What one Slack user may do, decided for one request (Slack asked once per entry).

    A workflow of None is one that is not stored (a run of an inline definition, a workflow
    that never existed): only admins may touch its runs.
    """

    user: str
    client: AsyncWebClient
    admins: frozenset[str]
    membership: Membership

    @classmethod
    def of(cls, user: str, client: AsyncWebClient, admins: Iterable[str]) -> Access:
        return cls(user, client, frozenset(admins), Membership(client))

    @property
    def is_admin(self) -> bool:
        return self.user in self.admins

    async def allows(self, allowed: Iterable[str] | None) -> bool:
        """Whether the user is an admin or named by ``allowed`` (None or empty: everyone)."""
        return await is_permitted(self.client, self.user, allowed, admins=self.admins, membership=self.membership)

    async def may_run(self, workflow: Workflow | None) -> bool:
        """``permissions.run`` (empty: everyone)."""
        if workflow is None:
            return self.is_admin
        return await self.allows(workflow.permissions.run if workflow.permissions else None)

    async def may_read(self, workflow: Workflow | None) -> bool:
        """``permissions.read``, else ``run``, plus its approvers (both empty: everyone)."""
        if workflow is None:
            return self.is_admin
        if workflow.permissions is None:
            return True
        readers = workflow.permissions.readers(approvers_of(workflow))
        return await self.allows(readers)
