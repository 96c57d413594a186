"""The CLI's edge: settings read once from the environment, and one client per command.

Every command that touches the database runs its coroutine through :func:`with_client`,
which opens a :class:`switchboard.Client` on :func:`settings` and turns the errors a user can
fix (an unknown workflow, an old schema, an unreadable key) into a message and exit code 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.markup import escape

from switchboard.cli.output import EXIT_INVALID, err
from switchboard.client import Client
from switchboard.errors import (
    CredentialError,
    PriceError,
    RunRecordNotFoundError,
    SchemaBehindError,
    SecretKeyError,
    WorkflowNotFoundError,
)
from switchboard.execution import NotRetryableError, RunNotFoundError
from switchboard.remote import RemoteUnavailableError
from switchboard.settings import Settings
from switchboard.tokens import ApiTokenError
from switchboard.webhooks import WebhookError

T = TypeVar("T")

#: What a user can fix from the message alone: printed, exit 2.
USER_ERRORS: tuple[type[Exception], ...] = (
    WorkflowNotFoundError,
    RunRecordNotFoundError,
    SchemaBehindError,
    CredentialError,
    SecretKeyError,
    PriceError,
    WebhookError,
    ApiTokenError,
    RunNotFoundError,
    NotRetryableError,
    RemoteUnavailableError,
)


def settings() -> Settings:
    """The settings of this command, read from the environment (once per command: tests and
    long-lived shells change the environment between commands)."""
    return Settings.from_env()


def run_settings() -> Settings:
    """:func:`settings` for a command that runs workflows (run, retry, bot, worker): a setting
    that only runs read (the price file) is checked now, a clear exit 2 before anything starts."""
    configured = settings()
    try:
        configured.price_table()
    except PriceError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    return configured


def with_client(call: Callable[[Client], Awaitable[T]], *, on: Settings | None = None) -> T:
    """Run ``call`` with a client open on ``on`` (default: :func:`settings`); a user-fixable
    error is a clear exit 2."""

    async def go() -> T:
        async with Client(on or settings()) as client:
            return await call(client)

    try:
        return asyncio.run(go())
    except USER_ERRORS as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
