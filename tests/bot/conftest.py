"""The bot tests use the shared fixtures (``bot``, ``two_bots``: :mod:`tests.helpers.fixtures`).

The names below are re-exported while the test modules that import them from here move to
:mod:`tests.helpers`.
"""

from __future__ import annotations

from tests.helpers.bot_server import Bot, bot_settings, serve_bot, serve_bots, serve_runtime, slack_side_client
from tests.helpers.fixtures import bot, two_bots
from tests.helpers.processes import free_port

__all__ = [
    "Bot",
    "bot",
    "bot_settings",
    "free_port",
    "serve_bot",
    "serve_bots",
    "serve_runtime",
    "slack_side_client",
    "two_bots",
]
