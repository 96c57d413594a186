"""``switchboard tokens``: API tokens for the bot's HTTP API (``/api/v1``).

``create`` prints the token once (it is stored only as a hash); ``list`` shows names, scopes,
owners, expiry and last use, never a token; ``revoke`` refuses every later call with it.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from switchboard.cli.output import EXIT_INVALID, emit_json, err, out
from switchboard.cli.session import with_client
from switchboard.client import Client
from switchboard.tokens import ApiToken, parse_duration

app = typer.Typer(help="API tokens for the HTTP API (/api/v1); shown once, stored hashed.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The token's name (lowercase letters, digits, '.', '_', '-').")]


@app.command("create")
def create(
    name: Name,
    scope: Annotated[str, typer.Option("--scope", help="read (reads), run (also starts, cancels, retries), admin")],
    workflow: Annotated[
        list[str] | None, typer.Option("--workflow", help="Only this workflow (repeatable; default: every one).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h, 2w (default: none).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="A Slack user id: the token acts as that user for permissions.")
    ] = None,
) -> None:
    """Create an API token and print it once."""
    try:
        lifetime = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        err.print(f"[red]--expires:[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None

    async def go(client: Client) -> tuple[ApiToken, str]:
        try:
            return await client.tokens.create(name, scope=scope, workflows=workflow, owner=owner, expires_in=lifetime)
        except ValueError as exc:
            err.print(f"[red]invalid token:[/red] {escape(str(exc))}")
            raise typer.Exit(EXIT_INVALID) from None

    _, secret = with_client(go)
    out.print(f"[green]✔[/green] created API token {escape(name)} (scope {escape(scope)}); stored hashed")
    out.print("The token is shown only now; send it as `Authorization: Bearer <token>`:")
    out.print(secret, markup=False)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """API tokens: names, scopes, workflows, owners, expiry and last use (never the tokens)."""
    tokens = with_client(lambda client: client.tokens.list())
    if as_json:
        emit_json([token.to_dict() for token in tokens])
        return
    if not tokens:
        out.print("no API tokens (switchboard tokens create NAME --scope run)")
        return
    table = Table(title="API tokens", title_justify="left")
    for column in ("name", "scope", "workflows", "owner", "expires", "last used", "state"):
        table.add_column(column, overflow="fold")
    for token in tokens:
        table.add_row(
            escape(token.name),
            token.scope,
            escape(", ".join(token.workflows) or "all"),
            escape(token.owner or ""),
            f"{token.expires_at:%Y-%m-%d %H:%M}" if token.expires_at else "never",
            f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never",
            "revoked" if token.revoked else "live",
        )
    out.print(table)


@app.command("revoke")
def revoke(name: Name) -> None:
    """Revoke an API token: every call with it is refused (401) from now on."""
    with_client(lambda client: client.tokens.revoke(name))
    out.print(f"[green]✔[/green] revoked API token {escape(name)}")
