"""``switchboard credentials``: encrypted credentials (secrets from stdin or a prompt, never argv)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from switchboard import providers
from switchboard.cli.output import (
    emit_json,
    out,
)
from switchboard.cli.session import with_client

app = typer.Typer(help="Encrypted credentials (secrets are read from stdin or a prompt).", no_args_is_help=True)


@app.command("add")
def credentials_add(
    name: Annotated[str, typer.Argument(help="The name workflows use in `credential:`.")],
    provider: Annotated[str, typer.Option("--provider", help=", ".join(providers.names()) + ", ...")],
    base_url: Annotated[str | None, typer.Option("--base-url", help="API base URL (Enterprise, self-hosted).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="A Slack user id: that user's own credential.")] = None,
    scopes: Annotated[list[str] | None, typer.Option("--scopes", help="OAuth scopes (repeatable).")] = None,
) -> None:
    """Store a credential. The secret (a token, or OAuth JSON) comes from stdin or a prompt, never argv."""
    prompt = sys.stdin.isatty()
    secret = typer.prompt("secret (token or OAuth JSON)", hide_input=True) if prompt else sys.stdin.read()
    info = with_client(
        lambda client: client.credentials.add(
            name, provider=provider, secret=secret, owner=owner, base_url=base_url, scopes=scopes
        )
    )
    whose = f" for {info.owner}" if info.owner else ""
    out.print(f"[green]✔[/green] stored credential {escape(info.name)}{escape(whose)} ({info.provider}), encrypted")


@app.command("list")
def credentials_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List credentials (names, providers, owners; never secrets)."""
    infos = with_client(lambda client: client.credentials.list())
    if as_json:
        emit_json([i.to_dict() for i in infos])
        return
    table = Table(title="credentials", title_justify="left")
    for column in ("name", "owner", "provider", "base url", "expires", "key"):
        table.add_column(column, overflow="fold")
    for i in infos:
        expires = f"{i.expires_at:%Y-%m-%d %H:%M}" if i.expires_at else ""
        table.add_row(
            escape(i.name), escape(i.owner or "shared"), i.provider, escape(i.base_url or ""), expires, i.key_id
        )
    out.print(table)


@app.command("remove")
def credentials_remove(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Remove that user's own credential.")] = None,
) -> None:
    """Delete a credential."""
    with_client(lambda client: client.credentials.remove(name, owner=owner))
    out.print(f"[green]✔[/green] removed credential {escape(name)}")


@app.command("rotate-key")
def credentials_rotate_key() -> None:
    """Re-encrypt every credential under the first key in SWITCHBOARD_SECRET_KEY."""
    count = with_client(lambda client: client.credentials.rotate_key())
    out.print(f"[green]✔[/green] re-encrypted {count} credential(s) under the current key")
