"""GitHub issue nodes against the fake GitHub over real HTTP."""

from __future__ import annotations

import pytest

from tests.fakes.github import FakeGitHub, comment_json, issue_json
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, make_context

ISSUE = "/api/v3/repos/acme/api/issues/7"


@pytest.fixture
def github(fake_http: FakeHTTP) -> FakeGitHub:
    return FakeGitHub(fake_http)


def ctx_for(github: FakeGitHub) -> object:
    return make_context(credential={"token": "ghp_test", "base_url": github.base_url})


async def test_get_issue_with_labels_and_comments(github: FakeGitHub) -> None:
    http = github.http
    http.script(
        "GET", ISSUE, Reply(200, issue_json(http, "acme/api", 7, title="Crash", body="It crashes", labels=["bug"]))
    )
    http.script("GET", ISSUE + "/comments", Reply(200, [comment_json(1, "me too"), comment_json(2, "fixed?")]))
    out = await call_node("github.get_issue", {"repo": "acme/api", "number": 7}, ctx_for(github))
    assert (out["number"], out["title"], out["labels"], out["author"]) == (7, "Crash", ["bug"], "octo")
    assert [c["body"] for c in out["comments"]] == ["me too", "fixed?"]


async def test_create_comment_and_label(github: FakeGitHub) -> None:
    http = github.http
    http.script(
        "POST",
        "/api/v3/repos/acme/api/issues",
        Reply(201, issue_json(http, "acme/api", 8, title="New", body="b", labels=["triage"])),
    )
    http.script("POST", "/api/v3/repos/acme/api/issues/8/comments", Reply(201, comment_json(9, "thanks")))
    http.script("POST", "/api/v3/repos/acme/api/issues/8/labels", Reply(200, [{"name": "triage"}, {"name": "bug"}]))
    http.script("GET", "/api/v3/repos/acme/api/issues/8/labels", Reply(200, [{"name": "triage"}, {"name": "bug"}]))
    ctx = ctx_for(github)
    created = await call_node(
        "github.create_issue", {"repo": "acme/api", "title": "New", "body": "b", "labels": ["triage"]}, ctx
    )
    assert (created["number"], created["labels"]) == (8, ["triage"])
    assert http.calls("/api/v3/repos/acme/api/issues", "POST")[0].json() == {
        "title": "New",
        "body": "b",
        "labels": ["triage"],
    }
    commented = await call_node("github.comment", {"repo": "acme/api", "number": 8, "body": "thanks"}, ctx)
    assert commented == {"id": 9, "author": "octo", "body": "thanks", "url": "https://github.example/c/9"}
    assert http.calls("/api/v3/repos/acme/api/issues/8/comments", "POST")[0].json() == {"body": "thanks"}
    labelled = await call_node("github.add_labels", {"repo": "acme/api", "number": 8, "labels": ["bug"]}, ctx)
    assert labelled == {"labels": ["triage", "bug"]}
    assert http.calls("/api/v3/repos/acme/api/issues/8/labels", "POST")[0].json() == ["bug"]
