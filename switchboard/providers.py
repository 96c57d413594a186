"""The registered providers, for front ends (the bot's ``/flow connect``, the CLI's help).

A re-export of :mod:`nodes.providers`, where each node family registers its provider, so that
front ends ask the library and never reach into ``nodes`` themselves.
"""

from __future__ import annotations

from nodes.providers import PROVIDERS, OAuth, Provider, find_provider, get_provider, title

__all__ = ["PROVIDERS", "OAuth", "Provider", "find_provider", "get_provider", "names", "title"]


def names() -> list[str]:
    """Every registered provider's name, sorted."""
    return sorted(PROVIDERS)
