"""github.write_file: create or update one text file with a commit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.github import transport
from nodes.params import Params
from nodes.registry import node

if TYPE_CHECKING:
    from github import Github
    from github.Commit import Commit
    from github.ContentFile import ContentFile
    from github.Repository import Repository


class WriteFileParams(Params):
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository, `owner/name`.")
    path: str = Field(min_length=1, description="Path of the file in the repository.")
    content: str = Field(description="The file's new text (stored as UTF-8).")
    message: str = Field(min_length=1, description="The commit message.")
    branch: str | None = Field(default=None, description="Branch to commit to (default: the default branch).")
    sha: str | None = Field(
        default=None,
        description="Blob sha of the version being replaced (from github.read_file); GitHub refuses the "
        "write if the file changed since. Without it the current sha is looked up first.",
    )


class WriteFileOutput(BaseModel):
    path: str = Field(description="The file's path.")
    sha: str = Field(description="The new blob sha (pass it as `sha` to the next update).")
    commit_sha: str = Field(description="The sha of the commit that wrote the file.")
    created: bool = Field(
        description="True when the file did not exist and was created; a write given a `sha` counts as an update."
    )


def _current_sha(repo: Repository, name: str, path: str, branch: str | None) -> str | None:
    """The file's blob sha on ``branch``, or None when there is no such file."""
    from github import GithubException

    try:
        found = repo.get_contents(path, **({"ref": branch} if branch else {}))
    except GithubException as exc:
        if exc.status == 404:
            return None
        raise
    if isinstance(found, list):
        raise ProviderError(f"{path!r} in {name} is a directory, not a file", provider=transport.PROVIDER)
    return found.sha


@node("github.write_file", credential="github")
async def write_file(ctx: NodeContext, params: WriteFileParams) -> WriteFileOutput:
    """Create or update a text file in a GitHub repository (one commit)."""

    def write(github: Github) -> WriteFileOutput:
        repo = github.get_repo(params.repo)  # lazy client: no request yet
        branch: dict[str, Any] = {"branch": params.branch} if params.branch else {}
        sha = params.sha or _current_sha(repo, params.repo, params.path, params.branch)
        if sha is None:
            result = repo.create_file(params.path, params.message, params.content, **branch)
        else:  # a stale sha: GitHub answers 409 "<path> does not match <sha>"
            result = repo.update_file(params.path, params.message, params.content, sha, **branch)
        content, commit = cast("ContentFile", result["content"]), cast("Commit", result["commit"])
        return WriteFileOutput(path=content.path, sha=content.sha, commit_sha=commit.sha, created=sha is None)

    where = f"repository {params.repo}" + (f" branch {params.branch}" if params.branch else "")
    return await transport.request(ctx, write, what=where)
