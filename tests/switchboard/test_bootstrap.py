"""Switchboard's Prefect defaults hold whatever is imported first (fresh interpreters).

Prefect's process worker imports ``prefect`` and then the deployment's entrypoint
(``deployments.entrypoint``), never ``switchboard`` first; a script may import ``bot.server``
or ``deployments.entrypoint`` directly. Each must end up on Switchboard's Prefect home and
with analytics off, exactly as ``import switchboard`` first does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = (
    "import json; from prefect.settings import get_current_settings as current; s = current(); "
    "print(json.dumps({'home': str(s.home), 'analytics': s.server.analytics_enabled}))"
)


def _settings_after(code: str, home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SWITCHBOARD_"))}
    env.update(SWITCHBOARD_HOME=str(home / "sb"), HOME=str(home / "user"))
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "code",
    [
        "import switchboard",
        "import deployments.entrypoint",
        "import bot.server",
        # What Prefect's process worker does: Prefect first, then the deployment's entrypoint.
        "import prefect\nfrom prefect.flows import load_flow_from_entrypoint\n"
        "load_flow_from_entrypoint('deployments.entrypoint:run_workflow_flow')",
        "import prefect.settings\nimport switchboard",
    ],
    ids=["switchboard", "entrypoint", "bot", "prefect-worker", "prefect-then-switchboard"],
)
def test_prefect_defaults_do_not_depend_on_import_order(code: str, tmp_path: Path) -> None:
    settings = _settings_after(code, tmp_path)
    assert settings == {"home": str(tmp_path / "sb" / "prefect"), "analytics": False}
    if not code.startswith("import prefect"):  # else Prefect made its default home on import
        assert not (tmp_path / "user" / ".prefect").exists()
