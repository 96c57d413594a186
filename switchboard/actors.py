"""Who acts: the audit log's actor when no Slack user or deployment is involved."""

from __future__ import annotations

import getpass


def default_actor() -> str:
    """``cli:<login>`` of the user running this process (``cli:unknown`` without one)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
