"""examples/issue-triage.yaml end to end: GitHub -> AI classify (for_each) -> labels -> Airtable,
run from Python and from a GitHub ``issues.opened`` delivery to the bot."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import switchboard
from storage.runs import RunStore
from switchboard.credentials import credential_store
from switchboard.webhooks import WebhookSecrets
from tests.fakes.airtable import FakeAirtable, FakeTable
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Recorded, Reply
from tests.fakes.openai import PATH as CHAT_PATH
from tests.fakes.openai import completion
from tests.helpers.bot_server import Bot

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "issue-triage.yaml"
BASE = "appTRIAGE00000001"


def classify_by_content(request: Recorded) -> Reply:
    """The fake model: crashes are bugs, everything else is a feature request."""
    text = request.json()["messages"][-1]["content"]
    return completion(json.dumps({"label": "bug" if "crash" in text.lower() else "feature"}))


@dataclass
class Services:
    """GitHub with three issues (#1 labelled), a classifying model and an Airtable table."""

    http: FakeHTTP
    github: FakeGitHub
    airtable: FakeAirtable
    table: FakeTable
    issues: list[dict[str, Any]]

    @classmethod
    def start(cls, http: FakeHTTP) -> Services:
        github = FakeGitHub(http)
        github.add_repo("acme/api")
        issues = [
            github.add_issue("acme/api", title="Old one", labels=["question"]),
            github.add_issue("acme/api", title="App crashes on start", body="Stack trace attached"),
            github.add_issue("acme/api", title="Dark mode please"),
        ]
        for number, label in ((2, "bug"), (3, "feature")):
            labels = Reply(200, [{"name": label}])
            http.script("POST", f"{github.issues_path('acme/api')}/{number}/labels", labels)
            http.script("GET", f"{github.issues_path('acme/api')}/{number}/labels", labels)
        http.route("POST", CHAT_PATH, classify_by_content)
        airtable = FakeAirtable(http)
        table = airtable.add_table(BASE, "Triage", fields=["Issue", "Title", "Label"])
        return cls(http, github, airtable, table, issues)

    def base_urls(self) -> dict[str, str]:
        return {
            "github-default": self.github.base_url,
            "openai-default": self.http.url("/v1"),
            "airtable-default": self.airtable.base_url,
        }

    def labels_posted(self) -> dict[str, Any]:
        posted = (r for r in self.http.requests if r.path.endswith("/labels") and r.method == "POST")
        return {r.path.split("/")[-2]: r.json() for r in posted}

    def logged(self) -> list[tuple[Any, ...]]:
        return sorted((r["fields"]["Issue"], r["fields"]["Title"], r["fields"]["Label"]) for r in self.table.records)


@pytest.mark.usefixtures("prefect_server")
async def test_issue_triage_labels_unlabelled_issues_and_logs_them(fake_http: FakeHTTP) -> None:
    services = Services.start(fake_http)
    bases = services.base_urls()

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": f"token-for-{kind}", "base_url": bases[name]}

    result = await switchboard.arun(
        switchboard.load(EXAMPLE), {"repo": "acme/api", "base": BASE}, credential_resolver=resolve, record=False
    )

    assert result.status == "completed", result.error
    assert [item["label"] for item in result.nodes["classify"].output] == ["feature", "bug"]  # newest first
    assert services.labels_posted() == {"2": ["bug"], "3": ["feature"]}
    assert services.logged() == [(2, "App crashes on start", "bug"), (3, "Dark mode please", "feature")]
    assert result.usage["total_tokens"] == 36


def issues_opened(services: Services, number: int) -> dict[str, Any]:
    """The payload GitHub posts for ``issues``/``opened`` (the fields a workflow reads, as GitHub spells them)."""
    return {
        "action": "opened",
        "issue": services.issues[number - 1],
        "repository": {"id": 1296269, "name": "api", "full_name": "acme/api", "private": False},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }


async def test_a_github_issues_opened_delivery_triages_only_the_new_issue(bot: Bot, fake_http: FakeHTTP) -> None:
    services = Services.start(fake_http)
    definition = yaml.safe_load(EXAMPLE.read_text())
    definition["triggers"][0]["inputs"]["base"] = BASE  # the example's placeholder base id
    await bot.apply(definition)
    store = credential_store(bot.engine, bot.runtime.settings)
    for name, base_url in services.base_urls().items():
        provider = name.removesuffix("-default")
        await store.add(name, provider=provider, secret=f"token-for-{provider}", base_url=base_url, actor="test")
    secret = "typed-into-githubs-webhook-form"
    await WebhookSecrets.on(bot.engine, bot.runtime.settings).add("issue-triage", secret=secret, actor="test")

    body = json.dumps(issues_opened(services, 3)).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }
    response = await bot.post(headers, body, path="/hooks/issue-triage")
    assert response.status_code == 202, response.text
    await bot.settle()

    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.status, record.trigger, record.triggered_by) == ("completed", "github", f"github:{delivery}")
    assert record.inputs == {"repo": "acme/api", "base": BASE, "limit": 5, "issue": 3}
    assert services.labels_posted() == {"3": ["feature"]}  # #2, unlabelled too, is not the new issue
    assert services.logged() == [(3, "Dark mode please", "feature")]
