"""No child process outlives the Switchboard process that started it (real processes).

Each test starts real `switchboard` processes that start children — a CLI run and the bot
their embedded Prefect server, `switchboard server` Prefect's server, an isolated worker
Prefect's worker — notes every descendant, stops the parent the ways it is stopped in life
(SIGTERM from systemd, SIGINT from a terminal, SIGKILL standing in for a crash) and checks
that no descendant is left. Processes of one test start together, so each test pays one
Prefect start-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.helpers.polling import PollTimeout, apoll_until, poll_until
from tests.helpers.processes import Processes, cmdline, descendants, free_port, survivors

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

STOPS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}

SLOW = """
name: slow
nodes:
  - id: wait
    type: core.wait
    params: {seconds: 120}
"""


async def stop_and_check(label: str, process: asyncio.subprocess.Process, how: str, noted: dict[int, str]) -> None:
    """Stop ``process`` with ``how``; none of ``noted`` (its descendants) may outlive it."""
    assert noted, f"{label}: started no child (nothing to check)"
    process.send_signal(STOPS[how])
    try:
        await asyncio.wait_for(process.wait(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{label} did not stop within 60 s of {how}")

    async def gone() -> bool:
        return not survivors(noted)

    try:
        await apoll_until(gone, timeout=20, interval=0.2, message=f"the children of {label} to end")
    except PollTimeout:
        left = survivors(noted)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"{label} stopped by {how} left {len(left)} process(es) running: {left}")


async def _children_with(process: asyncio.subprocess.Process, marker: str, label: str) -> dict[int, str]:
    async def found() -> dict[int, str] | None:
        assert process.returncode is None, f"{label} exited early"
        children = descendants(process.pid)
        return children if any(marker in cmdline(pid) for pid in children) else None

    noted: dict[int, str] = await apoll_until(found, timeout=120, interval=0.2, message=f"{label} to start {marker}")
    return noted


@pytest.fixture
def embedded(processes: Processes, tmp_path: Path) -> Processes:
    """Processes on the embedded default: no PREFECT_API_URL, one Prefect home for all (migrated once)."""
    processes.env.pop("PREFECT_HOME", None)  # Switchboard's default: <SWITCHBOARD_HOME>/prefect
    (tmp_path / "slow.yaml").write_text(SLOW)
    return processes


async def test_a_cli_run_takes_its_embedded_prefect_server_with_it(embedded: Processes, tmp_path: Path) -> None:
    runs = {how: await embedded.start(f"run-{how}", "run", str(tmp_path / "slow.yaml")) for how in STOPS}
    noted = {how: await _children_with(run, "prefect.server.api.server", f"run-{how}") for how, run in runs.items()}
    await asyncio.gather(*(stop_and_check(f"switchboard run ({how})", runs[how], how, noted[how]) for how in STOPS))


async def test_the_bot_takes_its_embedded_prefect_server_with_it(embedded: Processes, tmp_path: Path) -> None:
    fake = FakeHTTP().start()
    try:
        slack = FakeSlack(fake)
        bots = {}
        for how in STOPS:
            env = dict(embedded.env) | {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SWITCHBOARD_SLACK_API_URL": slack.api_url,
            }
            port = free_port()
            bots[how] = (port, await embedded.start(f"bot-{how}", "bot", "--port", str(port), env=env))
        noted = {}
        for how, (port, bot) in bots.items():
            noted[how] = await _children_with(bot, "prefect.server.api.server", f"bot-{how}")

            async def serving(port: int = port) -> bool:  # it serves while (or after) Prefect starts
                try:
                    async with httpx.AsyncClient() as client:
                        return (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)).status_code == 200
                except httpx.HTTPError:
                    return False

            await apoll_until(serving, timeout=60, interval=0.2, message=f"bot-{how} to answer /healthz")
        await asyncio.gather(
            *(stop_and_check(f"switchboard bot ({how})", bots[how][1], how, noted[how]) for how in STOPS)
        )
    finally:
        fake.stop()


async def test_the_server_and_an_isolated_worker_take_their_children_with_them(processes: Processes) -> None:
    # (The processes fixture stops what is left with SIGTERM at the end, as systemd would.)
    server = await processes.start_server()
    workers = {how: await processes.start_worker(f"w-{how.lower()}", "--isolated") for how in ("SIGTERM", "SIGKILL")}
    noted_server = descendants(server.pid)
    noted_workers = {how: descendants(worker.pid) for how, worker in workers.items()}
    await asyncio.gather(
        *(stop_and_check(f"worker --isolated ({how})", workers[how], how, noted_workers[how]) for how in workers)
    )
    await stop_and_check("switchboard server (SIGKILL)", server, "SIGKILL", noted_server)


def test_descendants_sees_grandchildren() -> None:
    """The helper itself: a shell's sleeping child is the test process's grandchild."""
    import subprocess

    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        poll_until(
            lambda: any("sleep 30" in cmdline(pid) for pid in descendants(os.getpid())),
            timeout=5,
            message="the shell's `sleep 30` among this process's descendants",
        )
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
