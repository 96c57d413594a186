"""github.write_file against the fake GitHub contents API over real HTTP."""

from __future__ import annotations

import base64
from typing import Any

import pytest

import nodes.github.write_file  # noqa: F401 - registers the node
import switchboard
from nodes.context import NodeContext
from nodes.errors import ProviderError, TransientError
from tests.fakes.github import FakeGitHub, blob_sha
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, make_context

REPO = "acme/api"
PATH = "docs/notes.md"


@pytest.fixture
def github(fake_http: FakeHTTP) -> FakeGitHub:
    return FakeGitHub(fake_http)


def ctx_for(github: FakeGitHub) -> NodeContext:
    return make_context(credential={"token": "ghp_test", "base_url": github.base_url})


def write(**params: Any) -> dict[str, Any]:
    return {"repo": REPO, "path": PATH, "message": "Update notes", **params}


async def test_creates_a_missing_file_after_looking_it_up(github: FakeGitHub) -> None:
    github.add_repo(REPO)
    out = await call_node("github.write_file", write(content="Hällo\n", branch="docs"), ctx_for(github))

    commit = github.commits[-1]
    assert out == {"path": PATH, "sha": blob_sha("Hällo\n".encode()), "commit_sha": commit["sha"], "created": True}
    lookup, put = github.http.requests
    assert (lookup.method, lookup.path, lookup.query) == ("GET", github.contents_path(REPO, PATH), {"ref": ["docs"]})
    assert (put.method, put.path) == ("PUT", github.contents_path(REPO, PATH))
    assert put.json() == {
        "message": "Update notes",
        "content": base64.b64encode("Hällo\n".encode()).decode(),
        "branch": "docs",
    }, "no sha for a new file"
    assert {r.headers["authorization"] for r in github.http.requests} == {"token ghp_test"}
    assert github.file_content(REPO, PATH, branch="docs") == "Hällo\n".encode()
    assert (commit["message"], commit["branch"]) == ("Update notes", "docs")


async def test_updates_an_existing_file_without_the_caller_knowing_its_sha(github: FakeGitHub) -> None:
    old_sha = github.store_file(REPO, PATH, b"old\n")
    out = await call_node("github.write_file", write(content="new\n"), ctx_for(github))

    assert out["created"] is False
    assert out["sha"] == blob_sha(b"new\n") != old_sha
    lookup, put = github.http.requests
    assert lookup.query == {}, "the default branch: no ref"
    assert put.json() == {"message": "Update notes", "content": base64.b64encode(b"new\n").decode(), "sha": old_sha}
    assert github.file_content(REPO, PATH) == b"new\n"
    # the returned sha is the one the next update needs
    again = await call_node("github.write_file", write(content="newer\n", sha=out["sha"]), ctx_for(github))
    assert (again["created"], github.file_content(REPO, PATH)) == (False, b"newer\n")
    assert again["commit_sha"] != out["commit_sha"]


async def test_a_given_sha_skips_the_lookup(github: FakeGitHub) -> None:
    sha = github.store_file(REPO, PATH, b"v1")
    await call_node("github.write_file", write(content="v2", sha=sha), ctx_for(github))
    assert [(r.method, r.json()["sha"]) for r in github.http.requests] == [("PUT", sha)]


async def test_a_stale_sha_is_a_409_conflict_with_githubs_message(github: FakeGitHub) -> None:
    stale = github.store_file(REPO, PATH, b"v1")
    github.store_file(REPO, PATH, b"v2 by someone else")
    with pytest.raises(ProviderError, match=f"{PATH} does not match {stale}") as raised:
        await call_node("github.write_file", write(content="mine", sha=stale), ctx_for(github))
    assert type(raised.value) is ProviderError and raised.value.status == 409
    assert github.file_content(REPO, PATH) == b"v2 by someone else"
    assert github.commits == []


async def test_a_directory_is_not_overwritten(github: FakeGitHub) -> None:
    github.http.script(
        "GET", github.contents_path(REPO, "docs"), Reply(200, [{"type": "file", "name": "a.md", "path": "docs/a.md"}])
    )
    with pytest.raises(ProviderError, match="'docs' in acme/api is a directory"):
        await call_node("github.write_file", write(path="docs", content="x"), ctx_for(github))
    assert github.http.calls(github.contents_path(REPO, "docs"), "PUT") == []


@pytest.mark.parametrize(
    ("method", "reply", "retry_after"),
    [
        ("GET", Reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": "7"}), 7.0),
        ("PUT", Reply(502, {"message": "Server Error"}), None),
        ("PUT", Reply(403, {"message": "secondary rate limit"}, {"Retry-After": "2"}), 2.0),
    ],
)
async def test_rate_limits_and_server_errors_are_transient(
    github: FakeGitHub, method: str, reply: Reply, retry_after: float | None
) -> None:
    github.store_file(REPO, PATH, b"v1")
    github.fail_next(method, github.contents_path(REPO, PATH), reply)
    with pytest.raises(TransientError, match=reply.body["message"]) as raised:
        await call_node("github.write_file", write(content="v2"), ctx_for(github))
    assert (raised.value.status, raised.value.retry_after) == (reply.status, retry_after)
    assert len(github.http.calls(github.contents_path(REPO, PATH), method)) == 1, "no library-level retries"
    assert github.file_content(REPO, PATH) == b"v1"


def workflow(**params: Any) -> dict[str, Any]:
    node = {"id": "save", "type": "github.write_file", "credential": "gh", "retries": 2, "retry_delay": 0}
    return {"name": "write-notes", "nodes": [{**node, "params": write(**params)}]}


@pytest.mark.usefixtures("prefect_server")
async def test_a_rate_limited_write_is_retried_by_the_workflow_and_commits_once(github: FakeGitHub) -> None:
    github.store_file(REPO, PATH, b"v1")
    github.fail_next(
        "PUT", github.contents_path(REPO, PATH), Reply(429, {"message": "slow down"}, {"Retry-After": "0"})
    )
    result = await switchboard.arun(workflow(content="v2"), credential_resolver=github.resolver(), record=False)

    node = result.nodes["save"]
    assert (result.status, node.attempts) == ("completed", 2)
    assert node.output["sha"] == blob_sha(b"v2") and node.output["created"] is False
    assert len(github.http.calls(github.contents_path(REPO, PATH), "PUT")) == 2
    assert len(github.commits) == 1 and github.file_content(REPO, PATH) == b"v2"


@pytest.mark.usefixtures("prefect_server")
async def test_a_conflict_fails_the_workflow_without_a_retry(github: FakeGitHub) -> None:
    stale = github.store_file(REPO, PATH, b"v1")
    github.store_file(REPO, PATH, b"v2")
    result = await switchboard.arun(
        workflow(content="v3", sha=stale), credential_resolver=github.resolver(), record=False
    )

    node = result.nodes["save"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert "github 409" in (node.error or "") and f"does not match {stale}" in (node.error or "")
    assert len(github.http.calls(github.contents_path(REPO, PATH), "PUT")) == 1
