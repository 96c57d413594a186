"""``switchboard webhooks``: per-workflow secrets for ``POST /hooks/<workflow>``.

A secret generated here is printed once, by ``add`` and ``rotate``, with the URL and a signed
curl example; one chosen elsewhere (``--secret-stdin``: GitHub asks you to type one, Stripe,
Slack and HubSpot issue theirs) is read from stdin and never printed. ``list`` shows only
workflow names.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer
from rich.markup import escape

from switchboard import webhooks
from switchboard.cli.output import EXIT_INVALID, err, out
from switchboard.cli.session import settings, with_client
from switchboard.client import Client
from switchboard.settings import Settings

app = typer.Typer(
    help="Webhook triggers: POST /hooks/NAME on the bot, signed with the workflow's secret.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="A stored workflow's name.")]
SecretStdin = Annotated[
    bool,
    typer.Option(
        "--secret-stdin",
        help="Read the secret from stdin (one line; one trailing newline is dropped) instead of generating one: "
        "the secret you typed in GitHub's webhook settings, or a provider's signing secret. It is never printed.",
    ),
]


def _read_secret() -> str:
    """The secret on stdin, without one trailing newline (what ``echo`` or a file adds); asked
    for without echo when stdin is a terminal."""
    if sys.stdin.isatty():
        return getpass.getpass("webhook secret (not echoed): ")
    text = sys.stdin.read(webhooks.MAX_SECRET_CHARS + 3)  # room for CRLF, and one more to tell "too long"
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


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


def _given(name: str, what: str, on: Settings) -> None:
    """What to tell after storing a secret chosen elsewhere (never the secret)."""
    out.print(f"[green]✔[/green] {what} webhook secret for {escape(name)} from stdin (stored encrypted; not shown)")
    out.print(f"URL: {escape(webhooks.hook_url(name, on))}")
    out.print(
        "GitHub: Settings → Webhooks → Add webhook, Payload URL the URL above, content type application/json,\n"
        "the same secret, and the events the workflow's github trigger lists. Other senders: see docs/triggers.md."
    )


def _store(name: str, secret_stdin: bool, *, rotate: bool) -> None:
    """Add or rotate ``name``'s secret: the one on stdin (checked first, never shown), else a
    generated one, shown once."""
    on = settings()
    given = _read_secret() if secret_stdin else None
    if given is not None:
        _check(given)

    async def store(client: Client) -> str:
        change = client.webhooks.rotate if rotate else client.webhooks.add
        return await change(name, actor=client.actor, secret=given)

    secret = with_client(store, on=on)
    if given is not None:
        _given(name, "rotated" if rotate else "stored", on)
    else:
        _show_secret(name, secret, "rotated" if rotate else "created", on)


@app.command("add")
def add(name: Name, secret_stdin: SecretStdin = False) -> None:
    """Create a webhook secret for a workflow and print it once, with the URL and a curl example
    (with --secret-stdin: store the one given on stdin, and print only the URL)."""
    _store(name, secret_stdin, rotate=False)


@app.command("rotate")
def rotate(name: Name, secret_stdin: SecretStdin = False) -> None:
    """Replace a workflow's webhook secret (the old one stops working at once); print the new one
    (with --secret-stdin: store the one given on stdin instead)."""
    _store(name, secret_stdin, rotate=True)


def _check(secret: str) -> None:
    """Refuse an unusable secret before opening the database (exit 2, the secret not shown)."""
    try:
        webhooks.check_secret(secret)
    except webhooks.WebhookError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


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
