"""``switchboard webhooks``: per-workflow secrets for ``POST /hooks/<workflow>``.

A secret is printed once, by ``add`` and ``rotate``, with the URL and a signed curl example;
``list`` shows only workflow names.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from switchboard import webhooks
from switchboard.cli.output import out
from switchboard.cli.session import settings, with_client
from switchboard.settings import Settings

app = typer.Typer(
    help="Webhook triggers: POST /hooks/NAME on the bot, signed with the workflow's secret.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="A stored workflow's name.")]


def _show_secret(name: str, secret: str, what: str, on: Settings) -> None:
    out.print(f"[green]✔[/green] {what} webhook secret for {escape(name)} (stored encrypted)")
    out.print(f"URL: {escape(webhooks.hook_url(name, on))}")
    out.print(
        "The secret is shown only now: store it with the sender. Sign each request with headers\n"
        f"  {webhooks.TIMESTAMP_HEADER}: <unix seconds>\n"
        f"  {webhooks.SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256(secret, '<timestamp>.' + body)>\n"
        "for example:"
    )
    out.print(webhooks.curl_example(name, secret, on), markup=False)


@app.command("add")
def add(name: Name) -> None:
    """Create a webhook secret for a workflow and print it once, with the URL and a curl example."""
    on = settings()
    secret = with_client(lambda client: client.webhooks.add(name, actor=client.actor), on=on)
    _show_secret(name, secret, "created", on)


@app.command("rotate")
def rotate(name: Name) -> None:
    """Replace a workflow's webhook secret (the old one stops working at once); print the new one."""
    on = settings()
    secret = with_client(lambda client: client.webhooks.rotate(name, actor=client.actor), on=on)
    _show_secret(name, secret, "rotated", on)


@app.command("remove")
def remove(name: Name) -> None:
    """Delete a workflow's webhook secret: its webhook refuses every request."""
    with_client(lambda client: client.webhooks.remove(name, actor=client.actor))
    out.print(f"[green]✔[/green] removed the webhook secret for {escape(name)}")


@app.command("list")
def list_() -> None:
    """Workflows that have a webhook (names only; secrets are never shown again)."""
    on = settings()
    names = with_client(lambda client: client.webhooks.names(), on=on)
    if not names:
        out.print("no webhooks (switchboard webhooks add NAME)")
    for name in names:
        out.print(f"{escape(name)}  {escape(webhooks.hook_url(name, on))}")
