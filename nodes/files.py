"""Files: save text or a copy of a file to the file store, load a file back, and convert tabular
files between CSV, JSON, JSONL and Markdown tables."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any, Literal

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
        _, content = await load_file(ctx, params.file.file_id)
    else:
        content = (params.content or "").encode()
    return FileRef(**await ctx.files.save(content, name=params.name, mime=params.mime))


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

TableFormat = Literal["csv", "json", "jsonl", "markdown"]

#: Largest input files.transform reads (bytes of the file or text; JSON size of a row list).
MAX_TRANSFORM_BYTES = 20 * 1024 * 1024
#: Most rows files.transform converts.
MAX_TRANSFORM_ROWS = 1_000_000
#: Rows returned in the output (the file holds all of them).
MAX_OUTPUT_ROWS = 1000
#: The converted text is returned inline up to this many bytes (UTF-8).
MAX_INLINE_TEXT = 100_000

_LABELS: dict[str, str] = {"csv": "CSV", "json": "JSON", "jsonl": "JSONL", "markdown": "markdown"}
_EXTENSIONS: dict[str, str] = {"csv": ".csv", "json": ".json", "jsonl": ".jsonl", "markdown": ".md"}
_MIMES: dict[str, str] = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "markdown": "text/markdown",
}


class TableError(ValueError):
    """The input is not the tabular data its format promises (mapped to NodeConfigError)."""


def _kind(value: Any) -> str:
    """How a JSON value reads in an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _count_ok(count: int, label: str) -> None:
    if count > MAX_TRANSFORM_ROWS:
        raise TableError(f"the {label} has more than {MAX_TRANSFORM_ROWS:,} rows, the most files.transform converts")


def _unique_header(names: list[str], label: str) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TableError(f"the {label} header repeats the column {name!r}")
        seen.add(name)
    return names


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _sniff_delimiter(text: str) -> str:
    """Comma, unless csv.Sniffer finds ``;``, tab or ``|`` and the header line has it."""
    sample = text[:65536]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
    return delimiter if delimiter in sample.split("\n", 1)[0] else ","


def _parse_csv(text: str) -> list[dict[str, Any]]:
    # One cell may be as large as the input (the csv module's default cap is 128 KiB; it only
    # ever grows here, so other users of the module are unaffected).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_TRANSFORM_BYTES + 1))
    # strict: an unterminated quote or text after a closing quote is an error, not a silent
    # merge of the rest of the file into one cell.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text), strict=True)
    rows: list[dict[str, Any]] = []
    try:
        header = next(reader, None)
        if header is None:
            return rows
        columns = _unique_header(header, "CSV")
        for record in reader:
            if not record:
                continue  # a blank line
            if len(record) > len(columns):
                if any(record[len(columns) :]):
                    raise TableError(
                        f"line {reader.line_num} of the CSV has {len(record)} fields, but the header has {len(columns)}"
                    )
                record = record[: len(columns)]  # trailing empty fields (a trailing delimiter)
            record += [""] * (len(columns) - len(record))
            rows.append(dict(zip(columns, record, strict=True)))
            _count_ok(len(rows), "CSV")
    except csv.Error as exc:
        raise TableError(f"line {reader.line_num} of the CSV is not valid CSV: {exc}") from None
    return rows


def _parse_json(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TableError(f"the JSON is not valid at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return _check_rows(value, "JSON")


def _check_rows(value: Any, label: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise TableError(f"the {label} is {_kind(value)}, not a list of objects (one per row)")
    _count_ok(len(value), label)
    for number, row in enumerate(value, start=1):
        if not isinstance(row, dict):
            raise TableError(f"row {number} of the {label} is not an object (it is {_kind(row)})")
    return value


def _parse_jsonl(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # Split on \n only: str.splitlines would also split on U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TableError(f"line {number} of the JSONL is not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise TableError(f"line {number} of the JSONL is not an object (it is {_kind(row)})")
        rows.append(row)
        _count_ok(len(rows), "JSONL")
    return rows


_MD_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_MD_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_MD_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def _md_cells(line: str) -> list[str] | None:
    """The cells of a table line (``\\|`` is a pipe, ``\\\\`` a backslash), or None without a pipe."""
    text = line.strip()
    cells: list[str] = []
    current: list[str] = []
    pipes = 0
    ends_with_pipe = False
    index = 0
    while index < len(text):
        char = text[index]
        ends_with_pipe = False
        if char == "\\" and index + 1 < len(text) and text[index + 1] in "\\|":
            current.append(text[index + 1])
            index += 2
            continue
        if char == "|":
            cells.append("".join(current))
            current = []
            pipes += 1
            ends_with_pipe = True
        else:
            current.append(char)
        index += 1
    if not pipes:
        return None
    if not ends_with_pipe:
        cells.append("".join(current))
    if text.startswith("|"):
        cells.pop(0)
    return [_MD_BREAK.sub("\n", cell.strip()) for cell in cells]


def _parse_markdown(text: str) -> list[dict[str, Any]]:
    """The first GitHub-style pipe table in the text (outside code fences)."""
    lines = text.split("\n")
    in_fence = False
    for index, line in enumerate(lines[:-1]):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        header = _md_cells(line)
        separator = _md_cells(lines[index + 1])
        if (
            not header
            or separator is None
            or len(header) != len(separator)
            or not all(_MD_SEPARATOR_CELL.match(cell) for cell in separator)
        ):
            continue
        columns = _unique_header(header, "markdown table")
        rows: list[dict[str, Any]] = []
        for body_line in lines[index + 2 :]:
            cells = _md_cells(body_line) if body_line.strip() else None
            if cells is None:
                break  # a blank line or a line without a pipe ends the table
            # As GitHub does: missing cells are empty, extra cells are ignored.
            cells = (cells + [""] * len(columns))[: len(columns)]
            rows.append(dict(zip(columns, cells, strict=True)))
            _count_ok(len(rows), "markdown table")
        return rows
    raise TableError("the markdown has no table (a header row, a |---| separator row, then the rows)")


_PARSERS = {"csv": _parse_csv, "json": _parse_json, "jsonl": _parse_jsonl, "markdown": _parse_markdown}


def parse_table(text: str, fmt: TableFormat) -> list[dict[str, Any]]:
    """Rows from CSV, JSON, JSONL or Markdown text; raises TableError saying what and where."""
    return _PARSERS[fmt](text.removeprefix("\ufeff"))


def _flat(value: Any) -> str:
    """A cell for CSV and Markdown: text as is, null empty, anything else (nested too) as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _md_cell(value: Any) -> str:
    text = _flat(value).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def render_table(rows: list[dict[str, Any]], columns: list[str], fmt: TableFormat) -> str:
    """Rows as CSV (RFC 4180 quoting), JSON, JSONL or a Markdown table."""
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not columns:
        return ""
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)  # \r\n line ends, so fields holding \r or \n are quoted
        writer.writerow(columns)
        writer.writerows([_flat(row.get(column)) for column in columns] for row in rows)
        return buffer.getvalue()
    lines = [
        "| " + " | ".join(_md_cell(column) for column in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class TransformParams(Params):
    file: FileRef | None = Field(default=None, description="A stored file holding the input (give `file` or `data`).")
    data: Any = Field(
        default=None,
        description="The input itself (give `file` or `data`): a list of row objects, or text in the `from` format.",
    )
    from_: TableFormat = Field(
        alias="from",
        description=(
            "The input format: csv (a header row first; comma, or a sniffed ; tab or |), json (a list of "
            "objects), jsonl (one object per line) or markdown (the first pipe table). A list in `data` "
            "is read as rows whatever this says."
        ),
    )
    to: TableFormat = Field(
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
        "output format's extension).",
    )

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


def _convert(source: str | list[Any], fmt: TableFormat, to: TableFormat) -> tuple[list[dict[str, Any]], list[str], str]:
    if isinstance(source, str):
        rows = parse_table(source, fmt)
    else:
        rows = _check_rows(source, "data")
        size = len(json.dumps(rows, ensure_ascii=False, default=str).encode())
        if size > MAX_TRANSFORM_BYTES:
            raise TableError(f"the data is {size:,} bytes as JSON; files.transform reads at most 20 MB")
    columns = columns_of(rows)
    return rows, columns, render_table(rows, columns, to)


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
        if len(content) > MAX_TRANSFORM_BYTES:
            raise NodeConfigError(
                f"file '{ref['name']}' is {len(content):,} bytes; files.transform reads at most 20 MB",
                node_id=ctx.node_id,
            )
        try:
            source = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NodeConfigError(
                f"file '{ref['name']}' is not UTF-8 text (byte {exc.start + 1}), so it is not {_LABELS[params.from_]}",
                node_id=ctx.node_id,
            ) from None
    elif isinstance(params.data, str):
        source = params.data
        if len(source.encode()) > MAX_TRANSFORM_BYTES:
            raise NodeConfigError(
                f"the data is {len(source.encode()):,} bytes; files.transform reads at most 20 MB",
                node_id=ctx.node_id,
            )
    elif isinstance(params.data, list):
        source = params.data
    else:
        raise NodeConfigError(
            f"`data` must be a list of row objects or text, not {_kind(params.data)}", node_id=ctx.node_id
        )
    try:
        rows, columns, text = await asyncio.to_thread(_convert, source, params.from_, params.to)
    except TableError as exc:
        raise NodeConfigError(f"{exc}{where}", node_id=ctx.node_id) from None
    encoded = text.encode()
    name = params.name or stem + _EXTENSIONS[params.to]
    try:
        saved = await ctx.files.save(encoded, name=name, mime=_MIMES[params.to])
    except LookupError as exc:  # storage.files.FileStoreError: over the store's size limit
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc
    return TransformOutput(
        rows=rows[:MAX_OUTPUT_ROWS],
        count=len(rows),
        columns=columns,
        file=FileRef.model_validate(saved),
        text=text if len(encoded) <= MAX_INLINE_TEXT else None,
    )
