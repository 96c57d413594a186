"""GitHub issue nodes: read one (with labels and comments), create, comment, label."""

from __future__ import annotations

import itertools
from typing import Any

from github import Github
from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.github import transport
from nodes.params import Params
from nodes.registry import node

REPO_FIELD = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository, `owner/name`.")
MAX_COMMENTS = 100


class Comment(BaseModel):
    id: int = Field(description="Comment id.")
    author: str | None = Field(description="Login of the author.")
    body: str = Field(description="Comment text.")
    url: str | None = Field(description="Link to the comment.")


class Issue(BaseModel):
    number: int = Field(description="Issue number.")
    title: str = Field(description="Title.")
    body: str | None = Field(description="Description.")
    state: str = Field(description="open or closed.")
    labels: list[str] = Field(description="Label names.")
    author: str | None = Field(description="Login of the author.")
    url: str | None = Field(description="Link to the issue.")
    comments: list[Comment] = Field(default_factory=list, description="Comments, oldest first (get_issue only).")


def _issue(raw: Any, comments: list[Comment] | None = None) -> Issue:
    return Issue(
        number=raw.number,
        title=raw.title,
        body=raw.body,
        state=raw.state,
        labels=[label.name for label in raw.labels],
        author=raw.user.login if raw.user else None,
        url=raw.html_url,
        comments=comments or [],
    )


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

    return await transport.run(ctx, fetch)


class CreateIssueParams(Params):
    repo: str = REPO_FIELD
    title: str = Field(min_length=1, description="Title.")
    body: str | None = Field(default=None, description="Description (Markdown).")
    labels: list[str] = Field(default_factory=list, description="Label names to set.")


@node("github.create_issue", credential="github")
async def create_issue(ctx: NodeContext, params: CreateIssueParams) -> Issue:
    """Open a new issue."""
    raw = await transport.run(
        ctx,
        lambda github: github.get_repo(params.repo).create_issue(
            title=params.title, body=params.body or "", labels=params.labels
        ),
    )
    return _issue(raw)


class CommentParams(IssueRef):
    body: str = Field(min_length=1, description="Comment text (Markdown).")


@node("github.comment", credential="github")
async def comment(ctx: NodeContext, params: CommentParams) -> Comment:
    """Comment on an issue or pull request."""
    raw = await transport.run(
        ctx,  # lazy client: get_issue makes no request, create_comment does
        lambda github: github.get_repo(params.repo).get_issue(params.number).create_comment(params.body),
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

    return LabelsOutput(labels=await transport.run(ctx, add))
