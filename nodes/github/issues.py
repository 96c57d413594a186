"""GitHub issue nodes: read one (with labels and comments), list, create, comment, label."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.github import transport
from nodes.params import Params
from nodes.registry import node

if TYPE_CHECKING:
    from github import Github

REPO_FIELD = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository, `owner/name`.")
MAX_COMMENTS = 100
PAGE_SIZE = 100  # GitHub's largest page


class Comment(BaseModel):
    id: int = Field(description="Comment id.")
    author: str | None = Field(description="Login of the author.")
    body: str = Field(description="Comment text.")
    url: str | None = Field(description="Link to the comment.")


class IssueSummary(BaseModel):
    number: int = Field(description="Issue number.")
    title: str = Field(description="Title.")
    body: str | None = Field(description="Description.")
    state: str = Field(description="open or closed.")
    labels: list[str] = Field(description="Label names.")
    author: str | None = Field(description="Login of the author.")
    url: str | None = Field(description="Link to the issue.")


class Issue(IssueSummary):
    comments: list[Comment] = Field(default_factory=list, description="Comments, oldest first (get_issue only).")


def _fields(raw: Any) -> dict[str, Any]:
    return {
        "number": raw.number,
        "title": raw.title,
        "body": raw.body,
        "state": raw.state,
        "labels": [label.name for label in raw.labels],
        "author": raw.user.login if raw.user else None,
        "url": raw.html_url,
    }


def _issue(raw: Any, comments: list[Comment] | None = None) -> Issue:
    return Issue(**_fields(raw), comments=comments or [])


class IssueRef(Params):
    repo: str = REPO_FIELD
    number: int = Field(ge=1, description="Issue number.")


@node("github.get_issue", credential="github")
async def get_issue(ctx: NodeContext, params: IssueRef) -> Issue:
    """Fetch one issue with its labels and (up to 100) comments."""

    def fetch(github: Github) -> Issue:
        raw = github.get_repo(params.repo).get_issue(params.number)
        listed: Any = raw.get_comments()
        comments = [
            Comment(id=c.id, author=c.user.login if c.user else None, body=c.body, url=c.html_url)
            for c in itertools.islice(listed, MAX_COMMENTS)
        ]
        return _issue(raw, comments)

    return await transport.request(ctx, fetch, what=f"issue {params.repo}#{params.number}")


class ListIssuesParams(Params):
    repo: str = REPO_FIELD
    state: Literal["open", "closed", "all"] = Field(default="open", description="Which issues: open, closed or all.")
    labels: list[str] = Field(default_factory=list, description="Only issues carrying all of these labels.")
    since: datetime | None = Field(
        default=None, description="Only issues updated at or after this time (ISO 8601; UTC when it has no offset)."
    )
    limit: int = Field(
        default=50, ge=1, le=1000, description="At most this many issues (pages stop being fetched once reached)."
    )


class IssueList(BaseModel):
    issues: list[IssueSummary] = Field(description="The issues, newest first (without comments).")
    count: int = Field(description="How many issues were returned.")


@node("github.list_issues", credential="github")
async def list_issues(ctx: NodeContext, params: ListIssuesParams) -> IssueList:
    """List a repository's issues, newest first (pull requests are left out)."""

    def fetch(github: Github) -> list[IssueSummary]:
        github.per_page = PAGE_SIZE
        filters: dict[str, Any] = {"state": params.state}
        if params.labels:
            filters["labels"] = params.labels
        if params.since is not None:  # PyGithub writes the datetime's own fields plus "Z": make them UTC
            since = params.since
            filters["since"] = since.astimezone(UTC) if since.tzinfo else since
        # The issues API lists pull requests too, marked by a `pull_request` key. Read the listed
        # JSON: `raw.pull_request` (or `raw.raw_data`) of a plain issue would fetch it again.
        listed = (
            raw for raw in github.get_repo(params.repo).get_issues(**filters) if "pull_request" not in raw._rawData
        )
        # islice stops after `limit` items, before the paginated list asks for another page
        return [IssueSummary(**_fields(raw)) for raw in itertools.islice(listed, params.limit)]

    issues = await transport.request(ctx, fetch, what=f"repository {params.repo}")
    return IssueList(issues=issues, count=len(issues))


class CreateIssueParams(Params):
    repo: str = REPO_FIELD
    title: str = Field(min_length=1, description="Title.")
    body: str | None = Field(default=None, description="Description (Markdown).")
    labels: list[str] = Field(default_factory=list, description="Label names to set.")


@node("github.create_issue", credential="github")
async def create_issue(ctx: NodeContext, params: CreateIssueParams) -> Issue:
    """Open a new issue."""
    raw = await transport.request(
        ctx,
        lambda github: github.get_repo(params.repo).create_issue(
            title=params.title, body=params.body or "", labels=params.labels
        ),
        what=f"repository {params.repo}",
    )
    return _issue(raw)


class CommentParams(IssueRef):
    body: str = Field(min_length=1, description="Comment text (Markdown).")


@node("github.comment", credential="github")
async def comment(ctx: NodeContext, params: CommentParams) -> Comment:
    """Comment on an issue or pull request."""
    raw = await transport.request(
        ctx,  # lazy client: get_issue makes no request, create_comment does
        lambda github: github.get_repo(params.repo).get_issue(params.number).create_comment(params.body),
        what=f"issue {params.repo}#{params.number}",
    )
    return Comment(id=raw.id, author=raw.user.login if raw.user else None, body=raw.body, url=raw.html_url)


class AddLabelsParams(IssueRef):
    labels: list[str] = Field(min_length=1, description="Label names to add.")


class LabelsOutput(BaseModel):
    labels: list[str] = Field(description="The issue's labels afterwards.")


@node("github.add_labels", credential="github")
async def add_labels(ctx: NodeContext, params: AddLabelsParams) -> LabelsOutput:
    """Add labels to an issue or pull request."""

    def add(github: Github) -> list[str]:
        issue = github.get_repo(params.repo).get_issue(params.number)  # lazy: no request yet
        issue.add_to_labels(*params.labels)
        return [label.name for label in issue.get_labels()]

    return LabelsOutput(labels=await transport.request(ctx, add, what=f"issue {params.repo}#{params.number}"))
