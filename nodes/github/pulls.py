"""GitHub pull request nodes: list and open."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.github import transport
from nodes.params import Params
from nodes.registry import node

if TYPE_CHECKING:
    from github import Github

REPO_FIELD = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository, `owner/name`.")
PAGE_SIZE = 100  # GitHub's largest page


class PullRequest(BaseModel):
    number: int = Field(description="Pull request number.")
    title: str = Field(description="Title.")
    state: str = Field(description="open or closed (a merged pull request is closed).")
    author: str | None = Field(description="Login of the author.")
    head: str = Field(description="The branch with the changes.")
    base: str = Field(description="The branch the changes would be merged into.")
    url: str | None = Field(description="Link to the pull request.")
    draft: bool = Field(description="Whether it is a draft.")
    merged: bool = Field(description="Whether it has been merged.")


def _pull(raw: Any) -> PullRequest:
    return PullRequest(
        number=raw.number,
        title=raw.title,
        state=raw.state,
        author=raw.user.login if raw.user else None,
        head=raw.head.ref,
        base=raw.base.ref,
        url=raw.html_url,
        draft=bool(raw.draft),
        # listings carry `merged_at` but not `merged`: reading `raw.merged` would fetch each one
        merged=raw.merged_at is not None,
    )


class ListPullsParams(Params):
    repo: str = REPO_FIELD
    state: Literal["open", "closed", "all"] = Field(
        default="open", description="Which pull requests: open, closed (merged included) or all."
    )
    base: str | None = Field(default=None, description="Only pull requests into this branch.")
    head: str | None = Field(
        default=None,
        description="Only pull requests from this branch: `branch` (in the repository) or `user:branch` (a fork).",
    )
    limit: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="At most this many pull requests (pages stop being fetched once reached).",
    )


class PullRequestList(BaseModel):
    pull_requests: list[PullRequest] = Field(description="The pull requests, newest first.")
    count: int = Field(description="How many pull requests were returned.")


@node("github.list_pull_requests", credential="github")
async def list_pull_requests(ctx: NodeContext, params: ListPullsParams) -> PullRequestList:
    """List a repository's pull requests, newest first."""

    def fetch(github: Github) -> list[PullRequest]:
        github.per_page = PAGE_SIZE
        filters: dict[str, Any] = {"state": params.state}
        if params.base:
            filters["base"] = params.base
        if params.head:  # GitHub filters on `user:branch` only (a bare branch would filter nothing)
            owner = params.repo.split("/")[0]
            filters["head"] = params.head if ":" in params.head else f"{owner}:{params.head}"
        # islice stops after `limit` items, before the paginated list asks for another page
        return [_pull(raw) for raw in itertools.islice(github.get_repo(params.repo).get_pulls(**filters), params.limit)]

    pulls = await transport.request(ctx, fetch, what=f"repository {params.repo}")
    return PullRequestList(pull_requests=pulls, count=len(pulls))


class CreatePullParams(Params):
    repo: str = REPO_FIELD
    title: str = Field(min_length=1, description="Title.")
    head: str = Field(
        min_length=1, description="The branch with the changes: `branch`, or `user:branch` for a fork's branch."
    )
    base: str = Field(min_length=1, description="The branch to merge into, e.g. `main`.")
    body: str | None = Field(default=None, description="Description (Markdown).")
    draft: bool = Field(default=False, description="Open it as a draft.")


@node("github.create_pull_request", credential="github")
async def create_pull_request(ctx: NodeContext, params: CreatePullParams) -> PullRequest:
    """Open a pull request (fails if one is already open for the same branches)."""
    extra: dict[str, Any] = {"body": params.body} if params.body is not None else {}
    raw = await transport.request(
        ctx,
        lambda github: github.get_repo(params.repo).create_pull(
            base=params.base, head=params.head, title=params.title, draft=params.draft, **extra
        ),
        what=f"repository {params.repo}",
    )
    return _pull(raw)
