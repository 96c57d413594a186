"""Tabular data between CSV, JSON, JSONL and Markdown tables: parsing, checking, rendering.

Pure functions behind ``files.transform`` (``nodes/files.py``). Bad input raises
:class:`TableError` saying what is wrong and where ("line 3 of the JSONL is not JSON: ...").
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from nodes import safe_json

TableFormat = Literal["csv", "json", "jsonl", "markdown"]

#: Largest input files.transform reads (bytes of the file or text; JSON size of a row list).
MAX_TRANSFORM_BYTES = 20 * 1024 * 1024
#: Most rows files.transform converts.
MAX_TRANSFORM_ROWS = 1_000_000

LABELS: dict[str, str] = {"csv": "CSV", "json": "JSON", "jsonl": "JSONL", "markdown": "markdown"}
EXTENSIONS: dict[str, str] = {"csv": ".csv", "json": ".json", "jsonl": ".jsonl", "markdown": ".md"}
MIMES: dict[str, str] = {
    "csv": "text/csv",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "markdown": "text/markdown",
}


class TableError(ValueError):
    """The input is not the tabular data its format promises (mapped to NodeConfigError)."""


def kind_of(value: Any) -> str:
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


def _loads(text: str, what: str) -> Any:
    """JSON from a file or text: bounded in depth and digits, no NaN, no duplicate keys."""
    return safe_json.loads(text, what=what, max_bytes=MAX_TRANSFORM_BYTES)


def _parse_json(text: str) -> list[dict[str, Any]]:
    try:
        value = _loads(text, "the JSON")
    except safe_json.UnsafeJSONError as exc:
        raise TableError(str(exc)) from None
    return _check_rows(value, "JSON")


def _check_rows(value: Any, label: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise TableError(f"the {label} is {kind_of(value)}, not a list of objects (one per row)")
    _count_ok(len(value), label)
    for number, row in enumerate(value, start=1):
        if not isinstance(row, dict):
            raise TableError(f"row {number} of the {label} is not an object (it is {kind_of(row)})")
    return value


def _parse_jsonl(text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    # Split on \n only: str.splitlines would also split on U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = _loads(line, f"line {number} of the JSONL")
        except safe_json.UnsafeJSONError as exc:  # within one line, only the column says where
            raise TableError(str(exc).replace(" (line 1 column ", " (column ")) from None
        if not isinstance(row, dict):
            raise TableError(f"line {number} of the JSONL is not an object (it is {kind_of(row)})")
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


def convert(source: str | list[Any], fmt: TableFormat, to: TableFormat) -> tuple[list[dict[str, Any]], list[str], str]:
    if isinstance(source, str):
        rows = parse_table(source, fmt)
    else:
        rows = _check_rows(source, "data")
        try:
            size = len(json.dumps(rows, ensure_ascii=False, default=str).encode())
        except RecursionError:  # rows from a template: nested past what JSON encoding recurses into
            raise TableError("the data nests too deeply to convert") from None
        if size > MAX_TRANSFORM_BYTES:
            raise TableError(f"the data is {size:,} bytes as JSON; files.transform reads at most 20 MB")
    columns = columns_of(rows)
    return rows, columns, render_table(rows, columns, to)
