"""github.list_pull_requests and github.create_pull_request against the fake GitHub over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

import nodes.github.pulls  # noqa: F401 - registers the nodes
import switchboard
from nodes.context import NodeContext
from nodes.errors import ProviderError, TransientError
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, make_context

REPO = "acme/api"


@pytest.fixture
def github(fake_http: FakeHTTP) -> FakeGitHub:
    fake = FakeGitHub(fake_http)
    fake.add_repo(REPO)
    return fake


def ctx_for(github: FakeGitHub) -> NodeContext:
    return make_context(credential={"token": "ghp_test", "base_url": github.base_url})


async def run(github: FakeGitHub, node_type: str, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = await call_node(node_type, {"repo": REPO, **params}, ctx_for(github))
    return out


async def test_lists_open_pull_requests_newest_first(github: FakeGitHub) -> None:
    github.add_pull(REPO, title="Add widgets", head="widgets", author="alice")
    github.add_pull(REPO, title="Old fix", head="old-fix", merged=True)
    github.add_issue(REPO, title="Not a pull request")
    github.add_pull(REPO, title="WIP: docs", head="bob:docs", base="release", draft=True, author="bob")

    out = await run(github, "github.list_pull_requests")

    assert out == {
        "count": 2,
        "pull_requests": [
            {
                "number": 4,
                "title": "WIP: docs",
                "state": "open",
                "author": "bob",
                "head": "docs",
                "base": "release",
                "url": "https://github.example/acme/api/pull/4",
                "draft": True,
                "merged": False,
            },
            {
                "number": 1,
                "title": "Add widgets",
                "state": "open",
                "author": "alice",
                "head": "widgets",
                "base": "main",
                "url": "https://github.example/acme/api/pull/1",
                "draft": False,
                "merged": False,
            },
        ],
    }
    (request,) = github.http.requests  # one page, and no request per listed pull request
    assert (request.method, request.path) == ("GET", github.pulls_path(REPO))
    assert request.query == {"state": ["open"], "per_page": ["100"]}
    assert request.headers["authorization"] == "token ghp_test"


async def test_filters_by_state_base_and_head(github: FakeGitHub) -> None:
    github.add_pull(REPO, title="Merged", head="feature", merged=True)
    github.add_pull(REPO, title="Closed unmerged", head="feature", state="closed")
    github.add_pull(REPO, title="Open feature", head="feature")
    github.add_pull(REPO, title="Into release", head="feature", base="release")
    github.add_pull(REPO, title="From a fork", head="bob:feature")

    out = await run(github, "github.list_pull_requests", state="all", base="main", head="feature")

    assert [(p["title"], p["state"], p["merged"]) for p in out["pull_requests"]] == [
        ("Open feature", "open", False),
        ("Closed unmerged", "closed", False),
        ("Merged", "closed", True),
    ]
    assert github.http.requests[0].query == {
        "state": ["all"],
        "base": ["main"],
        "head": ["acme:feature"],  # GitHub filters on user:branch; a bare branch is the repository owner's
        "per_page": ["100"],
    }
    fork = await run(github, "github.list_pull_requests", head="bob:feature")
    assert [p["title"] for p in fork["pull_requests"]] == ["From a fork"]


async def test_listing_stops_fetching_pages_once_the_limit_is_reached(github: FakeGitHub) -> None:
    for n in range(250):
        github.add_pull(REPO, title=f"PR {n + 1}", head=f"branch-{n + 1}")

    out = await run(github, "github.list_pull_requests", limit=120)

    assert out["count"] == 120
    assert [p["number"] for p in out["pull_requests"]] == list(range(250, 130, -1))
    _first, second = github.http.calls(github.pulls_path(REPO))
    assert len(github.http.requests) == 2, "exactly two page requests"
    assert second.query == {"state": ["open"], "per_page": ["100"], "page": ["2"]}


async def test_opens_a_pull_request(github: FakeGitHub) -> None:
    out = await run(
        github, "github.create_pull_request", title="Add widgets", head="widgets", base="main", body="Closes #3"
    )

    assert out == {
        "number": 1,
        "title": "Add widgets",
        "state": "open",
        "author": "octo",
        "head": "widgets",
        "base": "main",
        "url": "https://github.example/acme/api/pull/1",
        "draft": False,
        "merged": False,
    }
    (request,) = github.http.requests
    assert (request.method, request.path) == ("POST", github.pulls_path(REPO))
    assert request.json() == {
        "base": "main",
        "head": "widgets",
        "title": "Add widgets",
        "body": "Closes #3",
        "draft": False,
    }
    assert request.headers["authorization"] == "token ghp_test"
    listed = await run(github, "github.list_pull_requests")
    assert [p["number"] for p in listed["pull_requests"]] == [1]


async def test_opens_a_draft_from_a_fork_without_a_body(github: FakeGitHub) -> None:
    out = await run(github, "github.create_pull_request", title="Try", head="bob:try", base="dev", draft=True)
    assert (out["head"], out["base"], out["draft"]) == ("try", "dev", True)
    assert github.http.requests[0].json() == {"base": "dev", "head": "bob:try", "title": "Try", "draft": True}


async def test_a_duplicate_pull_request_is_a_422_with_githubs_message(github: FakeGitHub) -> None:
    github.add_pull(REPO, title="First", head="widgets")
    with pytest.raises(ProviderError) as raised:
        await run(github, "github.create_pull_request", title="Again", head="widgets", base="main")
    assert type(raised.value) is ProviderError and raised.value.status == 422
    assert str(raised.value) == "github 422: Validation Failed: A pull request already exists for acme:widgets."
    # into another base it is not a duplicate
    other = await run(github, "github.create_pull_request", title="Backport", head="widgets", base="release")
    assert other["number"] == 2


async def test_a_field_error_names_the_field(github: FakeGitHub) -> None:
    invalid_head = {
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    }
    github.fail_next("POST", github.pulls_path(REPO), Reply(422, invalid_head))
    with pytest.raises(ProviderError, match=r"^github 422: Validation Failed: PullRequest\.head invalid$"):
        await run(github, "github.create_pull_request", title="x", head="no-such-branch", base="main")


@pytest.mark.parametrize(
    ("node_type", "method", "reply", "retry_after"),
    [
        ("github.list_pull_requests", "GET", Reply(429, {"message": "rate limited"}, {"Retry-After": "4"}), 4.0),
        ("github.list_pull_requests", "GET", Reply(500, {"message": "Server Error"}), None),
        ("github.create_pull_request", "POST", Reply(502, {"message": "Bad Gateway"}), None),
        ("github.create_pull_request", "POST", Reply(429, {"message": "rate limited"}, {"Retry-After": "1"}), 1.0),
    ],
)
async def test_rate_limits_and_server_errors_are_transient(
    github: FakeGitHub, node_type: str, method: str, reply: Reply, retry_after: float | None
) -> None:
    github.fail_next(method, github.pulls_path(REPO), reply)
    params = {"title": "x", "head": "feature", "base": "main"} if method == "POST" else {}
    with pytest.raises(TransientError, match=reply.body["message"]) as raised:
        await run(github, node_type, **params)
    assert (raised.value.status, raised.value.retry_after) == (reply.status, retry_after)
    assert len(github.http.requests) == 1, "no library-level retries"


def workflow(node: dict[str, Any]) -> dict[str, Any]:
    return {"name": "pulls", "nodes": [{"credential": "gh", "retries": 2, "retry_delay": 0, **node}]}


@pytest.mark.usefixtures("prefect_server")
async def test_a_rate_limited_listing_is_retried_by_the_workflow(github: FakeGitHub) -> None:
    github.add_pull(REPO, title="Add widgets", head="widgets")
    github.fail_next("GET", github.pulls_path(REPO), Reply(429, {"message": "slow down"}, {"Retry-After": "0"}))
    node = {"id": "open_prs", "type": "github.list_pull_requests", "params": {"repo": REPO}}
    result = await switchboard.arun(workflow(node), credential_resolver=github.resolver(), record=False)

    assert (result.status, result.nodes["open_prs"].attempts) == ("completed", 2)
    assert result.nodes["open_prs"].output["count"] == 1
    assert len(github.http.calls(github.pulls_path(REPO))) == 2


@pytest.mark.usefixtures("prefect_server")
async def test_a_duplicate_fails_the_workflow_without_a_retry(github: FakeGitHub) -> None:
    github.add_pull(REPO, title="First", head="widgets")
    params = {"repo": REPO, "title": "Again", "head": "widgets", "base": "main"}
    node = {"id": "open_pr", "type": "github.create_pull_request", "params": params}
    result = await switchboard.arun(workflow(node), credential_resolver=github.resolver(), record=False)

    failed = result.nodes["open_pr"]
    assert (result.status, failed.status, failed.attempts) == ("failed", "failed", 1)
    assert "A pull request already exists for acme:widgets." in (failed.error or "")
    assert len(github.http.calls(github.pulls_path(REPO), "POST")) == 1
