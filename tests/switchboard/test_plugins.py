"""Node plugins for real: the example package is pip-installed into a virtual environment,
and Switchboard's processes there load it through the ``switchboard.nodes`` entry points."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client

from flows.model import DefinitionError
from flows.plan import build_plan
from storage.runs import RunStore
from tests.bot.test_commands import block_text
from tests.fakes.slack import slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until
from tests.helpers.processes import Processes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin-example"

BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "switchboard-plugin-broken"
version = "0.0.1"

[project.entry-points."switchboard.nodes"]
broken = "switchboard_plugin_broken"
"""

REVERSE = {
    "name": "reverse-demo",
    "outputs": {"reversed": "{{ nodes.flip.output.text }}", "length": "{{ nodes.flip.output.length }}"},
    "nodes": [{"id": "flip", "type": "example.reverse", "params": {"text": "Switchboard", "upper": True}}],
}


@dataclass
class Venv:
    python: Path
    env: dict[str, str]

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], env=self.env, cwd=cwd, capture_output=True, text=True, timeout=300
        )

    def pip_install(self, path: Path) -> None:
        # --no-deps: Switchboard and its dependencies come from the test's own environment;
        # --no-build-isolation: nothing is downloaded to build the package.
        done = self.run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(path))
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def venv(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Venv]:
    """A fresh virtual environment that sees this environment's packages (Switchboard included)
    and has the example plugin installed by pip."""
    where = tmp_path_factory.mktemp("plugin-venv")
    # Without pip or setuptools of its own: those of this environment (below) install into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")], check=True, timeout=300)
    python = where / "venv" / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Process this environment's site-packages as a site dir (its .pth files too: the editable
    # install of Switchboard is one).
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "switchboard-tests.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    home = where / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SWITCHBOARD_"))},
        "SWITCHBOARD_HOME": str(home),
        "PREFECT_API_URL": prefect_server,
        "PYTHONPATH": str(ROOT),
    }
    created = Venv(python, env)
    created.pip_install(EXAMPLE)
    yield created


async def test_an_installed_plugin_is_listed_runs_and_a_broken_one_is_reported(
    venv: Venv, tmp_path: Path, bot: Bot
) -> None:
    """One test, one virtual environment: making one and installing into it is most of the cost.
    The steps block (they wait for processes) in a thread: the bot serves in this event loop."""
    await asyncio.to_thread(_listed_with_its_package, venv)
    await asyncio.to_thread(_runs_from_the_cli, venv, tmp_path)
    await _a_parent_applied_from_a_folder_calls_a_plugin_child_from_the_cli_and_slack_on_a_worker(venv, bot, tmp_path)
    await asyncio.to_thread(_the_example_packages_own_test_passes, venv)
    await asyncio.to_thread(_a_broken_plugin_is_reported_by_name_and_the_others_load, venv, tmp_path)


def _listed_with_its_package(venv: Venv) -> None:
    shown = venv.run("-m", "switchboard.cli", "nodes", "example.reverse")
    assert shown.returncode == 0, shown.stderr
    assert "example.reverse v1 · from switchboard-plugin-example 0.1.0" in shown.stdout
    listed = json.loads(venv.run("-m", "switchboard.cli", "nodes", "--json").stdout)
    (reverse,) = [n for n in listed if n["type"] == "example.reverse"]
    assert (reverse["package"], reverse["package_version"]) == ("switchboard-plugin-example", "0.1.0")
    (built_in,) = [n for n in listed if n["type"] == "core.set"]
    assert built_in["package"] == "switchboard"


def _runs_from_the_cli(venv: Venv, tmp_path: Path) -> None:
    path = tmp_path / "reverse.yaml"
    path.write_text(yaml.safe_dump(REVERSE))
    done = venv.run("-m", "switchboard.cli", "run", str(path), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["outputs"] == {"reversed": "DRAOBHCTIWS", "length": 11}


FOLDER: dict[str, dict[str, Any]] = {
    "child.yaml": {
        "name": "plugin-child",
        "inputs": {"text": {"type": "string", "required": True}},
        "outputs": {"reversed": "{{ nodes.flip.output.text }}"},
        "nodes": [{"id": "flip", "type": "example.reverse", "params": {"text": "{{ inputs.text }}"}}],
    },
    "parent.yaml": {
        "name": "plugin-parent",
        "inputs": {"text": {"type": "string", "default": "parent"}},
        "outputs": {"from_child": "{{ nodes.call.output.outputs.reversed }}"},
        "nodes": [
            {
                "id": "call",
                "type": "core.workflow",
                "params": {"workflow": "plugin-child", "inputs": {"text": "{{ inputs.text }}"}},
            }
        ],
    },
}


async def _nested_under_the_call_node(engine: Any, parent_run_id: str) -> None:
    """The child's record names the parent, and Prefect nests its flow run under the parent's
    ``call`` task run."""
    (child,) = [r for r in await RunStore(engine).list(limit=50) if r.parent_run_id == parent_run_id]
    parent = await RunStore(engine).get(parent_run_id)
    assert (child.workflow, child.status, child.trigger) == ("plugin-child", "completed", "workflow")
    async with get_client() as client:
        child_flow_run = await client.read_flow_run(UUID(str(child.flow_run_id)))
        assert child_flow_run.parent_task_run_id is not None, "the child is a subflow"
        node_task_run = await client.read_task_run(child_flow_run.parent_task_run_id)
    assert (node_task_run.name, str(node_task_run.flow_run_id)) == ("call", str(parent.flow_run_id))


async def _a_parent_applied_from_a_folder_calls_a_plugin_child_from_the_cli_and_slack_on_a_worker(
    venv: Venv, bot: Bot, tmp_path: Path
) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    for name, definition in FOLDER.items():
        (folder / name).write_text(yaml.safe_dump(definition))
    env = {
        **venv.env,
        "SWITCHBOARD_DATABASE_URL": bot.runtime.settings.effective_database_url,
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    on_bots_database = Venv(venv.python, env)

    applied = await asyncio.to_thread(on_bots_database.run, "-m", "switchboard.cli", "apply", str(folder), "--json")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert sorted((c["name"], c["change"]) for c in json.loads(applied.stdout)["changes"]) == [
        ("plugin-child", "created"),
        ("plugin-parent", "created"),
    ]

    ran = await asyncio.to_thread(
        on_bots_database.run, "-m", "switchboard.cli", "run", "plugin-parent", "-i", "text=from the cli", "--json"
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "completed" and result["outputs"] == {"from_child": "ilc eht morf"}
    await _nested_under_the_call_node(bot.engine, result["run_id"])

    # The bot (this process) has no plugin: its runs go to a warm worker of the environment that has.
    workers = Processes(env, tmp_path, python=str(venv.python))
    try:
        await workers.start_worker("plugin-worker")
        bot.runtime.settings = bot.runtime.settings.model_copy(update={"execution": "remote"})
        headers, body = slash_command("run plugin-parent text=slack", user="U1", channel="C-plugin")
        assert (await bot.post(headers, body)).status_code == 200

        def summary() -> str:
            posted = bot.slack.channel_messages("C-plugin")
            text = block_text(posted[0].blocks) if posted else ""
            return text if "*Outputs*" in text or "*Error:*" in text else ""

        shown = await apoll_until(summary, timeout=120, message="the Slack run's summary")
        assert '`from_child` = "kcals"' in shown, shown
        (record,) = [
            r
            for r in await RunStore(bot.engine).list(limit=50)
            if r.triggered_by == "slack:U1" and r.workflow == "plugin-parent"
        ]
        assert record.status == "completed"
        await _nested_under_the_call_node(bot.engine, record.id)
        assert "↳ `plugin-child` v1" in shown, "the parent's message shows the child as one node"
    finally:
        await workers.stop_all()


def _the_example_packages_own_test_passes(venv: Venv) -> None:
    done = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests"), cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


def test_a_process_without_the_plugin_refuses_the_run_naming_the_type_and_machine() -> None:
    """This test process has no plugin installed: the plan fails before any node runs."""
    with pytest.raises(DefinitionError) as caught:
        build_plan(REVERSE)
    (problem,) = caught.value.problems
    assert problem.node == "flip" and problem.field == "type"
    assert problem.message.startswith("unknown node type 'example.reverse' on ")
    assert (
        f"(pid {os.getpid()})" in problem.message
        and "is the plugin that provides it installed here?" in problem.message
    )


def _a_broken_plugin_is_reported_by_name_and_the_others_load(venv: Venv, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "switchboard_plugin_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "switchboard_plugin_broken" / "__init__.py").write_text('raise RuntimeError("no config for acme")\n')
    venv.pip_install(broken)
    try:
        listed = venv.run("-m", "switchboard.cli", "nodes")
        assert listed.returncode == 0, listed.stderr
        assert "example.reverse" in listed.stdout and "core.set" in listed.stdout
        assert "node plugin broken (switchboard_plugin_broken, switchboard-plugin-broken) did not load" in listed.stderr
        assert "RuntimeError: no config for acme" in listed.stderr
        doctor = venv.run("-m", "switchboard.cli", "doctor", "--json", "--no-slack-api")
        (check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "node plugins"]
        assert check["status"] == "fail"
        assert "broken (switchboard_plugin_broken): RuntimeError: no config for acme" in check["summary"]
        assert "example (switchboard-plugin-example 0.1.0: example.reverse)" in check["summary"]
        assert doctor.returncode == 1
    finally:
        venv.run("-m", "pip", "uninstall", "-y", "-q", "switchboard-plugin-broken")
