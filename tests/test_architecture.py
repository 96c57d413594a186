"""The layers hold (docs/architecture.md): import-linter's contracts, and what they cannot see.

``lint-imports`` checks the imports; these tests add the rules that are not imports: the
library never reads the environment outside its settings, and the front ends set no Prefect
state.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where the environment may be read in the library: the settings (the edge's snapshot), the
#: Prefect bootstrap at import (Prefect's own PREFECT_* defaults), the embedded Prefect server's
#: child process (inherits the environment), the OAuth parser (given the snapshot), and the
#: default client of the module-level conveniences.
ENV_READERS = {"settings.py", "bootstrap.py", "embedded_prefect.py", "oauth_settings.py", "client.py"}


def _library_modules() -> list[Path]:
    return [p for p in (ROOT / "switchboard").rglob("*.py") if "cli" not in p.relative_to(ROOT / "switchboard").parts]


def test_import_linter_contracts_are_kept() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def test_the_library_reads_the_environment_only_through_settings() -> None:
    offenders = []
    for path in _library_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            reads_env = isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
            builds_settings = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (getattr(node.func, "id", None) == "Settings" or getattr(node.func, "attr", None) == "from_env")
            )
            if (reads_env or builds_settings) and path.name not in ENV_READERS:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "the library must be given its settings, not read them: " + ", ".join(offenders)


def test_front_ends_set_no_prefect_state_and_open_no_session() -> None:
    """The bot, the warm worker and the deployment entrypoint leave flow-run states and the
    database to the client (``client.slack.settle``, ``client.pool_runs``)."""
    forbidden = ("set_flow_run_state", "set_task_run_state", "prefect.states", "AsyncSession", "sessionmaker")
    offenders = [
        f"{path.relative_to(ROOT)}: {word}"
        for front_end in ("bot", "deployments")
        for path in (ROOT / front_end).glob("*.py")
        for word in forbidden
        if word in path.read_text()
    ]
    assert offenders == []
