"""The root ``switchboard`` command; each module of this package adds its commands to it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="switchboard",
    help="Run workflow automations as Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
