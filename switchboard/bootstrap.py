"""Prefect environment defaults for the embedded mode.

Each value is only a default (``os.environ.setdefault``): anything the operator set wins.
They are meant to be set before Prefect is imported, but must not depend on it: Prefect's
process worker imports ``prefect`` first and only then the deployment's entrypoint
(``deployments.entrypoint``), so when Prefect is already loaded its process-wide settings are
re-read from the environment once the defaults are in it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_DEFAULTS = {
    # Offline by default: no analytics calls.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The ephemeral server's first start migrates a fresh database: give it time on 2 cores.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # Write task-run rows promptly. The flush interval must be a whole number: Prefect 3.9
    # sleeps int(interval) between flushes, so 0.5 busy-loops the server on SQLite (a full
    # core, and constant writes that collide with API requests as "database is locked").
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def configure_prefect_environment() -> None:
    """Set Prefect defaults for Switchboard (idempotent; cheapest before ``import prefect``)."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    # The embedded default keeps Prefect's database and result storage under Switchboard's
    # home, unless the operator points Prefect somewhere (a home or a server) themselves.
    if "PREFECT_HOME" not in os.environ and "PREFECT_API_URL" not in os.environ:
        home = Path(os.environ.get("SWITCHBOARD_HOME", "~/.switchboard")).expanduser()
        prefect_home = home / "prefect"
        prefect_home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(prefect_home)
    if "prefect.context" in sys.modules:
        # Prefect read its settings when it was imported, before these defaults existed.
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
