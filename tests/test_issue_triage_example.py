"""examples/issue-triage.yaml end to end: GitHub -> AI classify (for_each) -> labels -> Airtable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import switchboard
from tests.fakes.airtable import FakeAirtable
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Recorded, Reply
from tests.fakes.openai import PATH as CHAT_PATH
from tests.fakes.openai import completion

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "issue-triage.yaml"
BASE = "appTRIAGE00000001"


def classify_by_content(request: Recorded) -> Reply:
    """The fake model: crashes are bugs, everything else is a feature request."""
    text = request.json()["messages"][-1]["content"]
    return completion(json.dumps({"label": "bug" if "crash" in text.lower() else "feature"}))


@pytest.mark.usefixtures("prefect_server")
async def test_issue_triage_labels_unlabelled_issues_and_logs_them(fake_http: FakeHTTP) -> None:
    github = FakeGitHub(fake_http)
    github.add_repo("acme/api")
    github.add_issue("acme/api", title="Old one", labels=["question"])
    github.add_issue("acme/api", title="App crashes on start", body="Stack trace attached")
    github.add_issue("acme/api", title="Dark mode please")
    for number, label in ((2, "bug"), (3, "feature")):
        labels = Reply(200, [{"name": label}])
        fake_http.script("POST", f"{github.issues_path('acme/api')}/{number}/labels", labels)
        fake_http.script("GET", f"{github.issues_path('acme/api')}/{number}/labels", labels)
    fake_http.route("POST", CHAT_PATH, classify_by_content)
    airtable = FakeAirtable(fake_http)
    table = airtable.add_table(BASE, "Triage", fields=["Issue", "Title", "Label"])

    bases = {
        "github-default": github.base_url,
        "openai-default": fake_http.url("/v1"),
        "airtable-default": airtable.base_url,
    }

    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        return {"token": f"token-for-{kind}", "base_url": bases[name]}

    result = await switchboard.arun(
        switchboard.load(EXAMPLE), {"repo": "acme/api", "base": BASE}, credential_resolver=resolve, record=False
    )

    assert result.status == "completed", result.error
    assert [item["label"] for item in result.nodes["classify"].output] == ["feature", "bug"]  # newest first
    posted = {
        r.path.split("/")[-2]: r.json() for r in fake_http.requests if r.path.endswith("/labels") and r.method == "POST"
    }
    assert posted == {"2": ["bug"], "3": ["feature"]}
    logged = sorted((r["fields"]["Issue"], r["fields"]["Title"], r["fields"]["Label"]) for r in table.records)
    assert logged == [(2, "App crashes on start", "bug"), (3, "Dark mode please", "feature")]
    assert result.usage["total_tokens"] == 36
