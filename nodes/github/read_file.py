"""github.read_file: one file's content at a ref."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import ProviderError
from nodes.files import FileRef
from nodes.github import transport
from nodes.params import Params
from nodes.registry import node


class ReadFileParams(Params):
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="The repository, `owner/name`.")
    path: str = Field(min_length=1, description="Path of the file in the repository.")
    ref: str | None = Field(default=None, description="Branch, tag or commit (default: the default branch).")


class ReadFileOutput(BaseModel):
    content: str | None = Field(description="The decoded text (null for a binary file: see `file`).")
    sha: str = Field(description="The blob sha (needed to update the file).")
    path: str = Field(description="The file's path.")
    size: int = Field(description="Size in bytes.")
    file: FileRef | None = Field(default=None, description="The stored copy of a binary file.")


@node("github.read_file", credential="github")
async def read_file(ctx: NodeContext, params: ReadFileParams) -> ReadFileOutput:
    """Read a file from a GitHub repository (text is decoded; a binary file becomes a file reference)."""
    kwargs: dict[str, Any] = {"ref": params.ref} if params.ref else {}
    found = await transport.request(
        ctx,
        lambda github: github.get_repo(params.repo).get_contents(params.path, **kwargs),
        what=f"{params.path!r} in {params.repo}" + (f" at {params.ref}" if params.ref else ""),
    )
    if isinstance(found, list):
        raise ProviderError(f"{params.path!r} in {params.repo} is a directory, not a file", provider=transport.PROVIDER)
    raw: bytes = found.decoded_content
    try:
        return ReadFileOutput(content=raw.decode("utf-8"), sha=found.sha, path=found.path, size=found.size)
    except UnicodeDecodeError:
        ref = await ctx.files.save(raw, name=found.name)
        return ReadFileOutput(content=None, sha=found.sha, path=found.path, size=found.size, file=FileRef(**ref))
