"""Files: save text or a copy of a file to the file store, and load a file back."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.params import Params
from nodes.registry import node


class FileRef(BaseModel):
    file_id: str = Field(description="The stored file's id.")
    name: str = Field(description="File name.")
    mime: str = Field(description="Media type.")
    size: int = Field(description="Size in bytes.")


class SaveParams(Params):
    content: str | None = Field(default=None, description="Text to store (UTF-8).")
    file: FileRef | None = Field(default=None, description="A file reference to store again under `name`.")
    name: str = Field(min_length=1, max_length=255, description="The file name (its extension sets the media type).")
    mime: str | None = Field(default=None, description="Media type (default: from the name).")

    @model_validator(mode="after")
    def _one_source(self) -> SaveParams:
        if (self.content is None) == (self.file is None):
            raise ValueError("give exactly one of `content` or `file`")
        return self


@node("files.save")
async def save(ctx: NodeContext, params: SaveParams) -> FileRef:
    """Store text, or a copy of another file, and output its file reference."""
    if params.file is not None:
        _, content = await _load(ctx, params.file.file_id)
    else:
        content = (params.content or "").encode()
    return FileRef(**await ctx.files.save(content, name=params.name, mime=params.mime))


class LoadParams(Params):
    file_id: str = Field(min_length=1, description="The id of a stored file.")


class LoadOutput(BaseModel):
    file: FileRef = Field(description="The file reference.")
    text: str | None = Field(description="The content as text, when it is UTF-8.")


async def _load(ctx: NodeContext, file_id: str) -> tuple[dict[str, object], bytes]:
    try:
        return await ctx.files.load(file_id)
    except LookupError as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc


@node("files.load")
async def load(ctx: NodeContext, params: LoadParams) -> LoadOutput:
    """Load a stored file: its reference, and its text when it is UTF-8."""
    ref, content = await _load(ctx, params.file_id)
    try:
        text: str | None = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return LoadOutput(file=FileRef.model_validate(ref), text=text)
