"""A bot on the embedded default answers Slack while its Prefect server is still starting.

A real `switchboard bot` process with no PREFECT_API_URL and a fresh home: Prefect's local
server migrates a new database before it answers (seconds). The bot starts that server at once,
off its event loop, says so in /healthz, and acknowledges and answers commands meanwhile; a run
asked for in that window waits for the server and then completes. (Before, the first run made
Prefect start its server synchronously on the bot's event loop: a `/flow help` sent right after
a `/flow run` was answered only once Prefect was up.)
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx

from switchboard.webhooks import signed_headers
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, slash_command
from tests.helpers.polling import apoll_until
from tests.helpers.processes import Processes, embedded_prefect_port, free_port

HELLO = """
name: hello
nodes:
  - id: greet
    type: text.template
    params: {template: "hello from the embedded server"}
"""


async def test_commands_are_answered_while_prefect_starts_and_the_run_waits_for_it(
    processes: Processes, tmp_path: Path
) -> None:
    processes.env.pop("PREFECT_HOME", None)  # the embedded default: <SWITCHBOARD_HOME>/prefect, fresh
    (tmp_path / "hello.yaml").write_text(HELLO)
    code, _, err = await processes.cli("apply", str(tmp_path / "hello.yaml"))
    assert code == 0, err
    code, out, err = await processes.cli("webhooks", "add", "hello")
    assert code == 0, err
    secret = re.search(r"SECRET='([^']+)'", out)
    assert secret is not None, out
    fake = FakeHTTP().start()
    try:
        slack = FakeSlack(fake)
        port = free_port()
        env = processes.env | {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SWITCHBOARD_SLACK_API_URL": slack.api_url,
        }
        bot = await processes.start("bot", "bot", "--port", str(port), env=env)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def health() -> dict[str, object] | None:
                assert bot.returncode is None, processes.log("bot")
                try:
                    response = await http.get("/healthz")
                except httpx.HTTPError:
                    return None
                found: dict[str, object] = response.json()
                return found

            await apoll_until(health, timeout=60, interval=0.2, message="the bot to answer /healthz")
            run_headers, run_body = slash_command("run hello", response_url=slack.response_url("run"))
            assert (await http.post("/slack/events", headers=run_headers, content=run_body)).status_code == 200
            help_headers, help_body = slash_command("help", response_url=slack.response_url("help"))
            assert (await http.post("/slack/events", headers=help_headers, content=help_body)).status_code == 200
            hook = await http.post("/hooks/hello", headers=signed_headers(secret.group(1), b"{}"), content=b"{}")
            assert hook.status_code == 202, hook.text

            async def answered() -> bool:
                return bool(slack.responses("help"))

            await apoll_until(answered, timeout=30, interval=0.2, message="the answer to /flow help")
            # Answered while Prefect's server does not answer yet: nothing waited for it.
            prefect_port = embedded_prefect_port(bot.pid)
            if prefect_port is not None:
                try:
                    status = (await http.get(f"http://127.0.0.1:{prefect_port}/api/health", timeout=2)).status_code
                except httpx.HTTPError:
                    status = None
                assert status != 200, "the bot answered /flow help only once its Prefect server was up"
            assert (await health() or {})["prefect"] == "starting"

            async def finished() -> bool:
                messages = slack.channel_messages("C1")
                return bool(messages) and "completed" in str(messages[-1].blocks)

            await apoll_until(finished, timeout=180, interval=0.2, message="the run's message to say completed")

            async def both_completed() -> bool:  # the webhook's run waited for Prefect too
                code, out, err = await processes.cli("runs", "--json")
                assert code == 0, err
                return {run["trigger"]: run["status"] for run in json.loads(out)} == {
                    "slack": "completed",
                    "webhook": "completed",
                }

            await apoll_until(
                both_completed, timeout=120, interval=0.2, message="the Slack and the webhook run to complete"
            )
            assert (await health() or {})["prefect"] == "ready"
    finally:
        fake.stop()
        await asyncio.sleep(0)
