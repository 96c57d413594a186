"""What a doctor check says: :class:`Check`, its marks, and helpers that keep secrets out of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.engine import make_url

Status = Literal["ok", "warn", "fail", "info"]
MARKS: dict[str, str] = {"ok": "✔", "warn": "!", "fail": "✗", "info": "·"}

#: Seconds any single network check may take.
TIMEOUT = 5.0
#: A worker is alive if it sent a heartbeat within this many of its heartbeat intervals.
HEARTBEAT_MISSES = 3
NEW_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


@dataclass(frozen=True)
class Check:
    """One finding: ``summary`` says what was found, ``fix`` what to do (for warn and fail)."""

    name: str
    status: Status
    summary: str
    fix: str | None = None

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix}


def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _reason(exc: BaseException, secret: str | None = None) -> str:
    """An exception as one short line, with ``secret`` (a password) removed if it appears."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if secret:
        message = message.replace(secret, "***")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- database ------------------------------------------------------------------------------


def reason(exc: BaseException, secret: str | None = None) -> str:
    """An exception as one short line, with ``secret`` (a password) removed if it appears."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if secret:
        message = message.replace(secret, "***")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- database ------------------------------------------------------------------------------
