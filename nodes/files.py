"""Files: save text or a copy of a file to the file store, load a file back, and convert tabular
files between CSV, JSON, JSONL and Markdown tables (the converters live in ``nodes.tables``)."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from nodes import tables
from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.file_names import checked_mime, checked_name
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
    name: str = Field(
        min_length=1,
        max_length=255,
        description="The file name (its extension sets the media type): one line of text, no `/` or `\\`.",
    )
    mime: str | None = Field(
        default=None, max_length=100, description="Media type, e.g. text/csv (default: from the name)."
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("mime")
    @classmethod
    def _safe_mime(cls, value: str | None) -> str | None:
        return checked_mime(value)

    @model_validator(mode="after")
    def _one_source(self) -> SaveParams:
        if (self.content is None) == (self.file is None):
            raise ValueError("give exactly one of `content` or `file`")
        return self


@node("files.save")
async def save(ctx: NodeContext, params: SaveParams) -> FileRef:
    """Store text, or a copy of another file, and output its file reference."""
    if params.file is not None:
        _, content = await load_file(ctx, params.file.file_id)
    else:
        content = (params.content or "").encode()
    try:
        return FileRef(**await ctx.files.save(content, name=params.name, mime=params.mime))
    except LookupError as exc:  # storage.files.FileStoreError: too large, or refused by the store
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc


class LoadParams(Params):
    file_id: str = Field(min_length=1, description="The id of a stored file.")


class LoadOutput(BaseModel):
    file: FileRef = Field(description="The file reference.")
    text: str | None = Field(description="The content as text, when it is UTF-8.")


async def load_file(ctx: NodeContext, file_id: str) -> tuple[dict[str, Any], bytes]:
    """The stored reference and bytes of a file; an unknown id is a NodeConfigError."""
    try:
        return await ctx.files.load(file_id)
    except LookupError as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc


@node("files.load")
async def load(ctx: NodeContext, params: LoadParams) -> LoadOutput:
    """Load a stored file: its reference, and its text when it is UTF-8."""
    ref, content = await load_file(ctx, params.file_id)
    try:
        text: str | None = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return LoadOutput(file=FileRef.model_validate(ref), text=text)


# --- files.transform: tabular data between CSV, JSON, JSONL and Markdown tables -------------

#: Rows returned in the output (the file holds all of them).
MAX_OUTPUT_ROWS = 1000
#: The converted text is returned inline up to this many bytes (UTF-8).
MAX_INLINE_TEXT = 100_000


class TransformParams(Params):
    file: FileRef | None = Field(default=None, description="A stored file holding the input (give `file` or `data`).")
    data: Any = Field(
        default=None,
        description="The input itself (give `file` or `data`): a list of row objects, or text in the `from` format.",
    )
    from_: tables.TableFormat = Field(
        alias="from",
        description=(
            "The input format: csv (a header row first; comma, or a sniffed ; tab or |), json (a list of "
            "objects), jsonl (one object per line) or markdown (the first pipe table). A list in `data` "
            "is read as rows whatever this says."
        ),
    )
    to: tables.TableFormat = Field(
        description=(
            "The output format: csv, json, jsonl or markdown. Nested values become JSON in CSV and "
            "markdown; CSV and markdown cells are read back as text (markdown cells without their "
            "leading and trailing spaces, line breaks as <br>)."
        )
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="File name for the converted file (default: the input file's name, or 'data', with the "
        "output format's extension): one line of text, no `/` or `\\`.",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return checked_name(value) if value is not None else None

    @model_validator(mode="after")
    def _one_source(self) -> TransformParams:
        if (self.file is None) == (self.data is None):
            raise ValueError("give exactly one of `file` or `data`")
        return self


class TransformOutput(BaseModel):
    rows: list[dict[str, Any]] = Field(
        description=f"The rows read, at most the first {MAX_OUTPUT_ROWS} (`count` says how many there are; "
        "`file` holds them all)."
    )
    count: int = Field(description="How many rows the input has.")
    columns: list[str] = Field(description="The columns: every key of every row, in first-seen order.")
    file: FileRef = Field(description="The converted document, stored under `name`.")
    text: str | None = Field(
        description=f"The converted document as text, when it is at most {MAX_INLINE_TEXT // 1000} kB "
        "(otherwise null: load `file`)."
    )


@node("files.transform")
async def transform(ctx: NodeContext, params: TransformParams) -> TransformOutput:
    """Convert tabular data between CSV, JSON, JSONL and Markdown tables, and store the result as a file."""
    where = ""
    stem = "data"
    source: str | list[Any]
    if params.file is not None:
        ref, content = await load_file(ctx, params.file.file_id)
        where = f" (file '{ref['name']}')"
        stem = PurePosixPath(str(ref["name"])).stem or stem
        if len(content) > tables.MAX_TRANSFORM_BYTES:
            raise NodeConfigError(
                f"file '{ref['name']}' is {len(content):,} bytes; files.transform reads at most 20 MB",
                node_id=ctx.node_id,
            )
        try:
            source = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            label = tables.LABELS[params.from_]
            raise NodeConfigError(
                f"file '{ref['name']}' is not UTF-8 text (byte {exc.start + 1}), so it is not {label}",
                node_id=ctx.node_id,
            ) from None
    elif isinstance(params.data, str):
        source = params.data
        if len(source.encode()) > tables.MAX_TRANSFORM_BYTES:
            raise NodeConfigError(
                f"the data is {len(source.encode()):,} bytes; files.transform reads at most 20 MB",
                node_id=ctx.node_id,
            )
    elif isinstance(params.data, list):
        source = params.data
    else:
        raise NodeConfigError(
            f"`data` must be a list of row objects or text, not {tables.kind_of(params.data)}", node_id=ctx.node_id
        )
    try:
        rows, columns, text = await asyncio.to_thread(tables.convert, source, params.from_, params.to)
    except tables.TableError as exc:
        raise NodeConfigError(f"{exc}{where}", node_id=ctx.node_id) from None
    encoded = text.encode()
    name = params.name or stem + tables.EXTENSIONS[params.to]
    try:
        saved = await ctx.files.save(encoded, name=name, mime=tables.MIMES[params.to])
    except LookupError as exc:  # storage.files.FileStoreError: over the store's size limit
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc
    return TransformOutput(
        rows=rows[:MAX_OUTPUT_ROWS],
        count=len(rows),
        columns=columns,
        file=FileRef.model_validate(saved),
        text=text if len(encoded) <= MAX_INLINE_TEXT else None,
    )
