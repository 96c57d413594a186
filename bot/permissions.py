"""Who may run or approve a workflow: Slack user ids, user-group ids and channel ids.

An entry ``U…``/``W…`` is a user, ``S…`` a user group (its members, via
``usergroups.users.list``), ``C…``/``G…`` a channel (its members, via
``conversations.members``). Admins (``SWITCHBOARD_SLACK_ADMINS``) may do anything; a
workflow without a list lets everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

logger = logging.getLogger(__name__)


async def is_permitted(
    client: AsyncWebClient, user: str, allowed: Iterable[str] | None, *, admins: Iterable[str] = ()
) -> bool:
    """Whether ``user`` is an admin, or named by ``allowed`` directly or through a group or channel.

    ``allowed`` None or empty means everyone.
    """
    if user in set(admins):
        return True
    entries = list(allowed or [])
    if not entries:
        return True
    if user in entries:
        return True
    for entry in entries:
        try:
            if entry.startswith("S"):
                response = await client.usergroups_users_list(usergroup=entry)
                if user in (response.get("users") or []):
                    return True
            elif entry.startswith(("C", "G")):
                cursor: str | None = None
                while True:
                    page = await client.conversations_members(channel=entry, cursor=cursor, limit=1000)
                    if user in (page.get("members") or []):
                        return True
                    cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                    if not cursor:
                        break
        except SlackApiError as exc:  # an unknown group or channel grants nothing
            logger.warning("permission entry %s could not be checked: %s", entry, exc.response.get("error"))
    return False
