"""The bot tests use the shared fixtures (``bot``, ``two_bots``: :mod:`tests.helpers.fixtures`).

``Bot`` and ``bot`` are re-exported here only because ``tests/nodes/test_slack.py`` still
imports them from this module; import them from :mod:`tests.helpers` instead.
"""

from __future__ import annotations

from tests.helpers.bot_server import Bot
from tests.helpers.fixtures import bot

__all__ = ["Bot", "bot"]
