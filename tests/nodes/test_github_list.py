"""github.list_issues against the fake GitHub issues listing (pages, Link headers) over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

import nodes.github.issues  # noqa: F401 - registers the nodes
from nodes.context import NodeContext
from nodes.errors import ProviderError, TransientError
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, make_context

REPO = "acme/api"


@pytest.fixture
def github(fake_http: FakeHTTP) -> FakeGitHub:
    return FakeGitHub(fake_http)


def ctx_for(github: FakeGitHub) -> NodeContext:
    return make_context(credential={"token": "ghp_test", "base_url": github.base_url})


async def list_issues(github: FakeGitHub, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = await call_node("github.list_issues", {"repo": REPO, **params}, ctx_for(github))
    return out


async def test_lists_open_issues_newest_first_without_pull_requests(github: FakeGitHub) -> None:
    github.add_issue(REPO, title="Crash on start", body="It crashes", labels=["bug"])
    github.add_pull(REPO, title="Fix the crash", head="fix-crash")
    github.add_issue(REPO, title="Old one", state="closed")
    github.add_issue(REPO, title="Docs", labels=["docs", "good first issue"])

    out = await list_issues(github)

    assert out == {
        "count": 2,
        "issues": [
            {
                "number": 4,
                "title": "Docs",
                "body": None,
                "state": "open",
                "labels": ["docs", "good first issue"],
                "author": "octo",
                "url": "https://github.example/acme/api/issues/4",
            },
            {
                "number": 1,
                "title": "Crash on start",
                "body": "It crashes",
                "state": "open",
                "labels": ["bug"],
                "author": "octo",
                "url": "https://github.example/acme/api/issues/1",
            },
        ],
    }
    (request,) = github.http.requests  # one page, and no request per listed issue
    assert (request.method, request.path) == ("GET", github.issues_path(REPO))
    assert request.query == {"state": ["open"], "per_page": ["100"]}
    assert request.headers["authorization"] == "token ghp_test"


async def test_filters_by_state_labels_and_since(github: FakeGitHub) -> None:
    github.add_issue(
        REPO, title="old bug", labels=["bug", "ui"], state="closed", updated_at=datetime(2024, 3, 1, tzinfo=UTC)
    )
    github.add_issue(
        REPO, title="new bug", labels=["bug", "ui"], state="closed", updated_at=datetime(2024, 5, 1, tzinfo=UTC)
    )
    github.add_issue(REPO, title="new, one label", labels=["bug"], updated_at=datetime(2024, 5, 2, tzinfo=UTC))
    github.add_issue(REPO, title="open bug", labels=["ui", "bug"], updated_at=datetime(2024, 5, 3, tzinfo=UTC))

    out = await list_issues(github, state="all", labels=["bug", "ui"], since="2024-04-01T02:00:00+02:00")

    assert [i["title"] for i in out["issues"]] == ["open bug", "new bug"]
    assert github.http.requests[0].query == {
        "state": ["all"],
        "labels": ["bug,ui"],
        "since": ["2024-04-01T00:00:00Z"],  # converted to UTC
        "per_page": ["100"],
    }
    closed = await list_issues(github, state="closed")
    assert [i["title"] for i in closed["issues"]] == ["new bug", "old bug"]


async def test_stops_fetching_pages_once_the_limit_is_reached(github: FakeGitHub) -> None:
    github.add_issues(REPO, 250)

    out = await list_issues(github, limit=120)

    assert out["count"] == 120
    assert [i["number"] for i in out["issues"]] == list(range(250, 130, -1))
    first, second = github.http.calls(github.issues_path(REPO))
    assert len(github.http.requests) == 2, "exactly two page requests, no third page"
    assert first.query == {"state": ["open"], "per_page": ["100"]}
    assert second.query == {"state": ["open"], "per_page": ["100"], "page": ["2"]}, "the Link header's next URL"


async def test_follows_pages_to_the_end_when_the_limit_is_higher(github: FakeGitHub) -> None:
    github.add_issues(REPO, 130)
    out = await list_issues(github, limit=1000)
    assert out["count"] == 130 and out["issues"][-1]["number"] == 1
    assert len(github.http.calls(github.issues_path(REPO))) == 2


async def test_pull_requests_do_not_count_towards_the_limit(github: FakeGitHub) -> None:
    github.add_issues(REPO, 5)
    for n in range(98):
        github.add_pull(REPO, title=f"PR {n}", head=f"branch-{n}")  # page 1: 98 pull requests + 2 issues

    out = await list_issues(github, limit=4)

    assert [i["number"] for i in out["issues"]] == [5, 4, 3, 2]
    assert len(github.http.calls(github.issues_path(REPO))) == 2


@pytest.mark.parametrize("limit", [0, 1001])
async def test_the_limit_is_bounded(github: FakeGitHub, limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        await list_issues(github, limit=limit)
    assert github.http.requests == []


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (Reply(404, {"message": "Not Found"}), ProviderError, "github 404: Not Found"),
        (Reply(410, {"message": "Issues are disabled for this repo"}), ProviderError, "Issues are disabled"),
        (Reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": "5"}), TransientError, "rate limit"),
        (Reply(503, {"message": "Service Unavailable"}), TransientError, "github 503: Service Unavailable"),
    ],
)
async def test_errors_map_onto_the_error_tree(
    github: FakeGitHub, reply: Reply, error: type[Exception], text: str
) -> None:
    github.add_issues(REPO, 3)
    github.fail_next("GET", github.issues_path(REPO), reply)
    with pytest.raises(error, match=text) as raised:
        await list_issues(github)
    assert type(raised.value) is error
    if reply.status == 429:
        assert isinstance(raised.value, TransientError) and raised.value.retry_after == 5.0
    assert len(github.http.requests) == 1, "no library-level retries"
