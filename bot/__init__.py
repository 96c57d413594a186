"""The Slack bot: slash commands, live run threads, buttons and modals (slack-bolt AsyncApp).

``bot.server`` serves it over HTTP (Starlette under uvicorn); ``switchboard bot`` starts it.
The bot only calls Switchboard's Python API and repositories, never Prefect internals.
"""

import switchboard  # noqa: F401 - Switchboard's Prefect defaults, before this package imports Prefect
