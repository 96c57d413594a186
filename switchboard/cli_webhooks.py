"""``switchboard webhooks``: per-workflow secrets for ``POST /hooks/<workflow>``.

A secret is printed once, by ``add`` and ``rotate``, with the URL and a signed curl example;
``list`` shows only workflow names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from storage.credentials import CredentialError
from storage.crypto import SecretKeyError
from storage.migrate import SchemaBehindError
from storage.workflows import WorkflowNotFoundError
from switchboard import webhooks

EXIT_INVALID = 2

app = typer.Typer(
    help="Webhook triggers: POST /hooks/NAME on the bot, signed with the workflow's secret.", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

T = TypeVar("T")
Name = Annotated[str, typer.Argument(help="A stored workflow's name.")]


def _call(call: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(call)
    except (webhooks.WebhookError, WorkflowNotFoundError, CredentialError, SecretKeyError, SchemaBehindError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


def _show_secret(name: str, secret: str, what: str) -> None:
    out.print(f"[green]✔[/green] {what} webhook secret for {escape(name)} (stored encrypted)")
    out.print(f"URL: {escape(webhooks.hook_url(name))}")
    out.print(
        "The secret is shown only now: store it with the sender. Sign each request with headers\n"
        f"  {webhooks.TIMESTAMP_HEADER}: <unix seconds>\n"
        f"  {webhooks.SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256(secret, '<timestamp>.' + body)>\n"
        "for example:"
    )
    out.print(webhooks.curl_example(name, secret), markup=False)


@app.command("add")
def add(name: Name) -> None:
    """Create a webhook secret for a workflow and print it once, with the URL and a curl example."""
    secret = _call(webhooks.add(name))
    _show_secret(name, secret, "created")


@app.command("rotate")
def rotate(name: Name) -> None:
    """Replace a workflow's webhook secret (the old one stops working at once); print the new one."""
    secret = _call(webhooks.rotate(name))
    _show_secret(name, secret, "rotated")


@app.command("remove")
def remove(name: Name) -> None:
    """Delete a workflow's webhook secret: its webhook refuses every request."""
    _call(webhooks.remove(name))
    out.print(f"[green]✔[/green] removed the webhook secret for {escape(name)}")


@app.command("list")
def list_() -> None:
    """Workflows that have a webhook (names only; secrets are never shown again)."""
    names = _call(webhooks.list_webhooks())
    if not names:
        out.print("no webhooks (switchboard webhooks add NAME)")
    for name in names:
        out.print(f"{escape(name)}  {escape(webhooks.hook_url(name))}")
