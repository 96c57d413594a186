"""The ``switchboard`` command line: one module per command group, on one root app.

Exit codes: 0 completed, 1 failed, 2 invalid definition or inputs (or bad usage).

``runs`` (run, retry, runs, cleanup), ``workflows`` (validate, apply, deploy, list, show, diff,
rollback, archive, audit), ``nodes`` (nodes, schema), ``operations`` (bot, server, worker,
doctor, db), ``credentials``, ``webhooks`` and ``tokens`` (sub-commands), ``mcp`` (the MCP
server over stdio); ``output`` prints for all of them and ``session`` opens the one client a
command uses.
"""

from __future__ import annotations

from switchboard.cli import credentials, mcp, nodes, operations, runs, tokens, webhooks, workflows
from switchboard.cli.root import app

app.add_typer(operations.db_app, name="db")
app.add_typer(credentials.app, name="credentials")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(tokens.app, name="tokens")

__all__ = ["app", "main", "mcp", "nodes", "runs", "workflows"]


def main() -> None:
    """Console-script entry point."""
    app()
