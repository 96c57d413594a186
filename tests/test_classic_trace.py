"""The classic trace from a workflow file: GitHub README -> AI summary -> file -> chat memory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from typer.testing import CliRunner

from switchboard.cli import app
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion
from tests.helpers.polling import apoll_until

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "readme-summary.yaml"
README = "# Acme API\n\nA small service that answers questions about widgets.\n"


@pytest.mark.usefixtures("prefect_server")
def test_classic_trace(fake_http: FakeHTTP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'trace.db'}")
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "files"))
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", Fernet.generate_key().decode())
    github, ai = FakeGitHub(fake_http), FakeOpenAI(fake_http)
    github.add_file(
        "acme/api", "README.md", README.encode(), Reply(429, {"message": "secondary rate limit"}, {"Retry-After": "0"})
    )
    ai.reply(completion("Acme API answers widget questions. It is small."))

    runner = CliRunner()
    for name, provider, base_url, secret in (
        ("github-default", "github", github.base_url, "ghp_trace"),
        ("openai-default", "openai", ai.base_url, "sk-trace"),
    ):
        added = runner.invoke(
            app, ["credentials", "add", name, "--provider", provider, "--base-url", base_url], input=secret
        )
        assert added.exit_code == 0, added.output

    outcome = runner.invoke(app, ["run", str(EXAMPLE), "--json", "-i", "repo=acme/api", "-i", "model=fake-model"])
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert result["status"] == "completed", result["error"]
    nodes = result["nodes"]
    assert nodes["readme"]["attempts"] == 2, "the 429 was retried by the node's own retries"
    assert nodes["readme"]["output"]["content"] == README
    assert nodes["summary"]["output"]["text"] == "Acme API answers widget questions. It is small."
    assert nodes["summary"]["output"]["usage"]["total_tokens"] == 18
    assert result["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "calls": 1,
        "cost_usd": None,
        "unpriced": ["fake-model"],
        "by_model": {
            "fake-model": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "calls": 1,
                "cost_usd": None,
            }
        },
    }
    assert nodes["save"]["output"]["name"] == "acme-api-summary.md"
    assert [(m["role"], m["content"]) for m in nodes["history"]["output"]["messages"]] == [
        ("user", README),
        ("assistant", "Acme API answers widget questions. It is small."),
    ]
    assert ai.last_messages()[-1] == {"role": "user", "content": README}

    listed = runner.invoke(app, ["runs", "--json"])
    assert listed.exit_code == 0, listed.output
    [record] = json.loads(listed.stdout)
    assert (record["run_id"], record["total_tokens"], record["cost_usd"]) == (result["run_id"], 18, None)

    assert sorted(asyncio.run(_task_run_names(result["flow_run_id"]))) == ["history", "readme", "save", "summary"]


async def _task_run_names(flow_run_id: str, expected: int = 4) -> list[str]:
    """Task-run rows are written from events, shortly after the run: wait for them."""
    async with get_client() as client:

        async def task_runs() -> list[Any] | None:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return runs if len(runs) >= expected else None

        runs = await apoll_until(task_runs, interval=0.2, message=f"{expected} task runs of flow run {flow_run_id}")
    return [r.name for r in runs]
