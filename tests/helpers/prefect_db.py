"""A Prefect database migrated once per test run, copied into every Prefect home a test starts.

Prefect migrates a new SQLite database on its server's first start: about 14 s of CPU on this
machine, paid by every ``switchboard server``, embedded server and test harness a test starts
on a fresh home. :func:`seed` copies a database migrated once (by the first test process to
need it; the others wait on a file lock) instead, so a server finds its schema current and
starts at once. The template is named by the Prefect version that made it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import prefect

#: The database file a Prefect server uses under its PREFECT_HOME (no connection URL set).
DATABASE_FILE = "prefect.db"


def template(root: Path) -> Path:
    """The migrated template under ``root`` (a directory every test process shares), made
    here unless another process already made it."""
    path = root / f"prefect-{prefect.__version__}-migrated.db"
    with (root / f"{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            making = path.with_suffix(".making")
            making.unlink(missing_ok=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            env |= {
                "PREFECT_HOME": str(root / "prefect-template-home"),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{making}",
            }
            subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
            # Everything into the main file: only it is copied.
            with sqlite3.connect(making) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            making.rename(path)
    return path


def seed(prefect_home: Path, migrated: Path, name: str = DATABASE_FILE) -> None:
    """Give the Prefect home ``prefect_home`` a copy of the migrated database named ``name``
    (unless it has one)."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    target = prefect_home / name
    if not target.exists():
        shutil.copyfile(migrated, target)
