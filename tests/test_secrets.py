"""No secret ever leaves the credential store: not in logs, artifacts, run results, run
records, the audit log, Prefect's flow-run parameters, or error messages.

Runs a real workflow (GitHub + AI with stored credentials, one of them OAuth that gets
refreshed, one revoked) on the Prefect test server and greps everything it produced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

import switchboard
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import CLIENT_SECRET, REFRESH_TOKEN, FakeOAuth
from tests.fakes.openai import FakeOpenAI, completion
from tests.helpers.polling import apoll_until

GITHUB_TOKEN = "ghp_SECRETgithubTOKEN0123456789"
SECRETS = [GITHUB_TOKEN, "stale-token", "fresh-token-1", REFRESH_TOKEN, CLIENT_SECRET]

WORKFLOW = {
    "name": "secret-grep",
    "nodes": [
        {
            "id": "readme",
            "type": "github.read_file",
            "credential": "gh",
            "params": {"repo": "acme/api", "path": "R.md"},
        },
        {
            "id": "summary",
            "type": "ai.chat",
            "credential": "llm",
            "params": {"prompt": "{{ nodes.readme.output.content }}", "model": "m"},
        },
    ],
}


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}")
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "files"))
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", Fernet.generate_key().decode())


async def _prefect_traces(flow_run_id: str) -> list[str]:
    """Everything Prefect holds about a flow run: its parameters, artifacts and logs."""
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        artifacts = [
            a
            for a in await client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        ]

        async def all_logs() -> list[Any] | None:  # logs reach the API in batches: up to the last one
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            return logs if any("Finished" in log.message or "Crashed" in log.message for log in logs) else None

        logs = await apoll_until(all_logs, interval=0.25, message=f"the last log line of flow run {flow_run_id}")
    return (
        [json.dumps(flow_run.parameters, default=str)]
        + [str(a.data) for a in artifacts]
        + [log.message for log in logs]
    )


def _leaks(texts: list[str]) -> list[str]:
    return [secret for secret in SECRETS if any(secret in text for text in texts)]


@pytest.mark.usefixtures("prefect_server", "isolated_home")
async def test_secrets_appear_nowhere(fake_http: FakeHTTP, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    github, ai = FakeGitHub(fake_http), FakeOpenAI(fake_http)
    oauth = FakeOAuth(fake_http)  # the fake now requires tokens: GitHub's plain token is accepted too
    fake_http.accept_token(GITHUB_TOKEN)
    github.add_file("acme/api", "R.md", b"# Acme\n")
    ai.reply(completion("Acme is small."))
    async with switchboard.default_client() as client:
        await client.credentials.add("gh", provider="github", secret=GITHUB_TOKEN, base_url=github.base_url)
        await client.credentials.add("llm", provider="openai", secret=oauth.credential_secret(), base_url=ai.base_url)

    ok = await switchboard.arun(WORKFLOW)
    assert ok.status == "completed", ok.error
    assert len(oauth.token_requests()) == 1, "the refused OAuth token was refreshed once"
    spent = {key: ok.usage[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens", "calls")}
    assert spent == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "calls": 1}

    oauth.revoke()
    fake_http.accept_token("nothing-valid", only=True)
    failed = await switchboard.arun(WORKFLOW)
    assert failed.status == "failed"
    assert "reconnect credential" in (failed.error or "")

    texts = [json.dumps(ok.to_dict()), json.dumps(failed.to_dict()), failed.error or ""]
    for result in (ok, failed):
        assert result.flow_run_id is not None
        texts += await _prefect_traces(result.flow_run_id)
    async with switchboard.default_client() as client:
        for result in (ok, failed):
            record = await client.runs.get(result.run_id)
            texts.append(json.dumps(dataclasses.asdict(record), default=str))
        texts += [json.dumps(dataclasses.asdict(entry), default=str) for entry in await client.audit.entries()]
        texts += [json.dumps([c.to_dict() for c in await client.credentials.list()])]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.exc_info[1]) for record in caplog.records if record.exc_info and record.exc_info[1]]

    assert any("Model usage:** 18 tokens" in text for text in texts), "the artifact was among the texts searched"
    assert any("refreshing it once" in text for text in texts), "the logs were among the texts searched"
    assert _leaks(texts) == []
