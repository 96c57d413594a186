"""files.transform: tabular data between CSV, JSON, JSONL and Markdown, over a real file store."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import nodes.document  # registers document.to_text for the workflow test
import nodes.files
import nodes.tables
import switchboard
from nodes.errors import NodeConfigError
from storage.files import FileStore
from tests.nodes.context import call_node, make_context

FORMATS = ["csv", "json", "jsonl", "markdown"]

#: The same table written by hand in each format; every value is text (CSV has no types).
ROWS: list[dict[str, Any]] = [
    {"name": "Ann Lee", "city": "Paris, FR", "note": 'said "hi"'},
    {"name": "Bo", "city": "Oslo", "note": ""},
]
SOURCES = {
    "csv": 'name,city,note\r\nAnn Lee,"Paris, FR","said ""hi"""\r\nBo,Oslo,\r\n',
    "json": json.dumps(ROWS),
    "jsonl": (
        '{"name": "Ann Lee", "city": "Paris, FR", "note": "said \\"hi\\""}\n'
        '\n{"name": "Bo", "city": "Oslo", "note": ""}\n'
    ),
    "markdown": (
        "# People\n\nSome intro text | with a pipe.\n\n"
        '| name | city | note |\n|:-----|:----:|-----:|\n| Ann Lee | Paris, FR | said "hi" |\n| Bo | Oslo | |\n\n'
        "After the table.\n"
    ),
}
#: Values that need quoting or escaping somewhere.
TRICKY: list[dict[str, Any]] = [
    {"id": "1", "text": "comma, inside", "quote": 'a "quoted" word', "multi": "line one\nline two"},
    {"id": "2", "text": "pipe | inside", "quote": "back\\slash \\| both", "multi": "two\nbreaks\n"},
    {"id": "3", "text": "ünïcödé ✓ 100%", "quote": "'single'", "multi": ""},
]


async def transform(files: FileStore, **params: Any) -> Any:
    return await call_node("files.transform", params, make_context(files=files))


async def stored_text(files: FileStore, ref: dict[str, Any]) -> str:
    _, content = await files.load(ref["file_id"])
    return content.decode()


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("target", FORMATS)
async def test_every_pair_converts_and_reads_back(files: FileStore, source: str, target: str) -> None:
    out = await transform(files, data=SOURCES[source], **{"from": source}, to=target)
    assert out["rows"] == ROWS and out["count"] == 2 and out["columns"] == ["name", "city", "note"]
    assert out["text"] == await stored_text(files, out["file"])
    extension = {"csv": ".csv", "json": ".json", "jsonl": ".jsonl", "markdown": ".md"}[target]
    assert out["file"]["name"] == "data" + extension
    assert out["file"]["size"] == len(out["text"].encode())
    back = await transform(files, file=out["file"], **{"from": target}, to="json")
    assert back["rows"] == ROWS
    assert json.loads(back["text"]) == ROWS


async def test_a_chain_through_every_format_keeps_the_rows(files: FileStore) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(TRICKY[0]))
    writer.writeheader()
    writer.writerows(TRICKY)
    original = buffer.getvalue()
    ref = await files.save(original.encode(), name="people.csv")

    as_json = await transform(files, file=ref, **{"from": "csv"}, to="json")
    assert as_json["file"]["name"] == "people.json" and as_json["file"]["mime"] == "application/json"
    as_jsonl = await transform(files, file=as_json["file"], **{"from": "json"}, to="jsonl")
    assert as_jsonl["file"]["name"] == "people.jsonl" and len(as_jsonl["text"].splitlines()) == 3
    as_markdown = await transform(files, file=as_jsonl["file"], **{"from": "jsonl"}, to="markdown")
    assert as_markdown["file"]["name"] == "people.md" and as_markdown["file"]["mime"] == "text/markdown"
    as_csv = await transform(files, file=as_markdown["file"], **{"from": "markdown"}, to="csv", name="final.csv")

    for step in (as_json, as_jsonl, as_csv):
        assert step["rows"] == TRICKY, step["file"]["name"]
    assert as_csv["file"]["name"] == "final.csv" and as_csv["file"]["mime"] == "text/csv"
    assert as_csv["text"] == original, "CSV -> JSON -> JSONL -> Markdown -> CSV gives the same bytes back"
    assert as_markdown["rows"] == TRICKY
    assert "| line one<br>line two |" in as_markdown["text"], "markdown cells carry line breaks as <br>"
    padded = await transform(files, data=[{" key ": "  both sides  "}], **{"from": "json"}, to="markdown")
    back = await transform(files, data=padded["text"], **{"from": "markdown"}, to="json")
    assert back["rows"] == [{"key": "both sides"}], "markdown cell padding is layout, not content"


async def test_csv_output_quotes_commas_quotes_and_newlines(files: FileStore) -> None:
    out = await transform(files, data=TRICKY[:2], **{"from": "json"}, to="csv")
    assert out["text"] == (
        "id,text,quote,multi\r\n"
        '1,"comma, inside","a ""quoted"" word","line one\nline two"\r\n'
        '2,pipe | inside,back\\slash \\| both,"two\nbreaks\n"\r\n'
    )
    assert list(csv.reader(io.StringIO(out["text"], newline="")))[1:] == [list(row.values()) for row in TRICKY[:2]]
    carriage = await transform(files, data=[{"a": "cr\ronly", "b": "crlf\r\nend"}], **{"from": "json"}, to="csv")
    assert carriage["text"] == 'a,b\r\n"cr\ronly","crlf\r\nend"\r\n'
    back = await transform(files, data=carriage["text"], **{"from": "csv"}, to="markdown")
    assert back["rows"] == [{"a": "cr\ronly", "b": "crlf\r\nend"}]
    assert back["text"].endswith("| cr<br>only | crlf<br>end |\n"), "markdown has one kind of line break: <br>"


async def test_markdown_output_escapes_pipes_and_reads_escapes_back(files: FileStore) -> None:
    out = await transform(files, data=TRICKY[:2], **{"from": "json"}, to="markdown")
    assert out["text"].splitlines() == [
        "| id | text | quote | multi |",
        "| --- | --- | --- | --- |",
        '| 1 | comma, inside | a "quoted" word | line one<br>line two |',
        "| 2 | pipe \\| inside | back\\\\slash \\\\\\| both | two<br>breaks<br> |",
    ]
    handwritten = "a | b\n--- | ---\nx \\| y | C:\\temp<br/>two\nonly one\n"
    rows = (await transform(files, data=handwritten, **{"from": "markdown"}, to="json"))["rows"]
    # No outer pipes, a short row filled with "", a line without a pipe ends the table.
    assert rows == [{"a": "x | y", "b": "C:\\temp\ntwo"}]
    extra = "| a |\n|---|\n| 1 | ignored |\n| |\n"
    assert (await transform(files, data=extra, **{"from": "markdown"}, to="json"))["rows"] == [{"a": "1"}, {"a": ""}]


async def test_tables_in_code_fences_are_not_the_table(files: FileStore) -> None:
    text = "```\n| x | y |\n|---|---|\n| 1 | 2 |\n```\n\n| real |\n| --- |\n| yes |\n"
    out = await transform(files, data=text, **{"from": "markdown"}, to="jsonl")
    assert out["rows"] == [{"real": "yes"}] and out["text"] == '{"real": "yes"}\n'


async def test_columns_are_the_union_and_nested_values_become_json(files: FileStore) -> None:
    rows = [
        {"id": 1, "tags": ["a", "b"]},
        {"id": 2, "owner": {"name": "Ann", "admin": True}, "score": 1.5},
        {"id": 3, "owner": None, "ok": False},
    ]
    out = await transform(files, data=rows, **{"from": "json"}, to="csv")
    assert out["columns"] == ["id", "tags", "owner", "score", "ok"]
    assert out["rows"] == rows, "rows keep their JSON types"
    assert out["text"] == (
        "id,tags,owner,score,ok\r\n"
        '1,"[""a"", ""b""]",,,\r\n'
        '2,,"{""name"": ""Ann"", ""admin"": true}",1.5,\r\n'
        "3,,,,false\r\n"
    )
    markdown = await transform(files, data=rows, **{"from": "json"}, to="markdown")
    assert '| 2 |  | {"name": "Ann", "admin": true} | 1.5 |  |' in markdown["text"]
    jsonl = await transform(files, data=rows, **{"from": "jsonl"}, to="jsonl")
    assert [json.loads(line) for line in jsonl["text"].splitlines()] == rows


async def test_csv_delimiters_boms_and_ragged_rows(files: FileStore) -> None:
    semicolons = "\ufeffname;amount\nAnn;1,5\nBo;2,25\n"
    out = await transform(files, data=semicolons, **{"from": "csv"}, to="json")
    assert out["rows"] == [{"name": "Ann", "amount": "1,5"}, {"name": "Bo", "amount": "2,25"}]
    ragged = "a,b,c\n1,2\n\n4,5,6,,\n"
    out = await transform(files, data=ragged, **{"from": "csv"}, to="json")
    assert out["rows"] == [{"a": "1", "b": "2", "c": ""}, {"a": "4", "b": "5", "c": "6"}]
    big_cell = 'a,b\n1,"' + "x" * 1_000_000 + '"\n'
    out = await transform(files, data=big_cell, **{"from": "csv"}, to="jsonl")
    assert out["rows"] == [{"a": "1", "b": "x" * 1_000_000}], "cells beyond the csv module's 128 KiB default"
    single = "name\nAlice\nBob\n"
    assert (await transform(files, data=single, **{"from": "csv"}, to="json"))["rows"] == [
        {"name": "Alice"},
        {"name": "Bob"},
    ]


async def test_empty_inputs(files: FileStore) -> None:
    out = await transform(files, data="", **{"from": "csv"}, to="json")
    assert out["rows"] == [] and out["count"] == 0 and out["columns"] == [] and out["text"] == "[]\n"
    out = await transform(files, data="a,b\n", **{"from": "csv"}, to="markdown")
    assert out["count"] == 0 and out["columns"] == [] and out["text"] == ""
    out = await transform(files, data=[], **{"from": "json"}, to="jsonl")
    assert out["count"] == 0 and out["file"]["size"] == 0


async def test_bad_input_says_what_and_where(files: FileStore) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"data": '{"a": 1}\n{"a": 2}\n{"a": oops}\n', "from": "jsonl"},
            r"line 3 of the JSONL is not valid JSON: Expecting value \(column 7\)",
        ),
        ({"data": '{"a": 1}\n[1, 2]\n', "from": "jsonl"}, r"line 2 of the JSONL is not an object \(it is a list\)"),
        ({"data": '[{"a": 1}, "two"]', "from": "json"}, r"row 2 of the JSON is not an object \(it is a string\)"),
        ({"data": '{"a": 1}', "from": "json"}, r"the JSON is an object, not a list of objects"),
        ({"data": '[{"a": 1},\n {"a": 2', "from": "json"}, r"the JSON is not valid JSON: .* \(line 2 column"),
        ({"data": "# Title\n\nNo table | here.\n", "from": "markdown"}, r"the markdown has no table"),
        ({"data": "| a | a |\n|---|---|\n| 1 | 2 |\n", "from": "markdown"}, r"header repeats the column 'a'"),
        ({"data": "a,b\n1,2\n3,4,5\n", "from": "csv"}, r"line 3 of the CSV has 3 fields, but the header has 2"),
        ({"data": "a,b,a\n1,2,3\n", "from": "csv"}, r"the CSV header repeats the column 'a'"),
        ({"data": 'a,b\n1,"open\n2,3\n', "from": "csv"}, r"line 3 of the CSV is not valid CSV: unexpected end"),
        ({"data": 'a\n"x"y\n', "from": "csv"}, r"line 2 of the CSV is not valid CSV: ',' expected after '\"'"),
        ({"data": [{"a": 1}, [1]], "from": "json"}, r"row 2 of the data is not an object \(it is a list\)"),
        ({"data": {"a": 1}, "from": "json"}, r"`data` must be a list of row objects or text, not an object"),
    ]
    for params, message in cases:
        with pytest.raises(NodeConfigError, match=message):
            await transform(files, to="csv", **params)


async def test_errors_in_a_file_name_the_file(files: FileStore) -> None:
    ref = await files.save(b'{"a": 1}\n{"a": 2}\nnot json\n', name="events.jsonl")
    with pytest.raises(NodeConfigError, match=r"line 3 of the JSONL is not valid JSON: .* \(file 'events.jsonl'\)"):
        await transform(files, file=ref, **{"from": "jsonl"}, to="csv")
    latin1 = await files.save("name\nJosé\n".encode("latin-1"), name="legacy.csv")
    with pytest.raises(NodeConfigError, match=r"file 'legacy.csv' is not UTF-8 text \(byte 9\)"):
        await transform(files, file=latin1, **{"from": "csv"}, to="json")
    with pytest.raises(NodeConfigError, match="no file with id 'missing'"):
        await transform(files, file={**ref, "file_id": "missing"}, **{"from": "jsonl"}, to="csv")


async def test_params_need_exactly_one_source_and_known_formats(files: FileStore) -> None:
    ref = await files.save(b"a\n1\n", name="a.csv")
    with pytest.raises(ValidationError, match="exactly one of"):
        await transform(files, **{"from": "csv"}, to="json")
    with pytest.raises(ValidationError, match="exactly one of"):
        await transform(files, file=ref, data="a\n1\n", **{"from": "csv"}, to="json")
    with pytest.raises(ValidationError, match="from"):
        await transform(files, data="a\n1\n", **{"from": "xlsx"}, to="json")
    with pytest.raises(ValidationError, match="Extra inputs"):
        await transform(files, data="a\n1\n", **{"from": "csv"}, to="json", delimiter=";")


async def test_input_over_20_mb_is_refused(files: FileStore) -> None:
    limit = nodes.tables.MAX_TRANSFORM_BYTES
    assert limit == 20 * 1024 * 1024
    big = "a\n" + "x" * (limit - 1)
    with pytest.raises(NodeConfigError, match=r"the data is 20,971,521 bytes; files.transform reads at most 20 MB"):
        await transform(files, data=big, **{"from": "csv"}, to="json")
    ref = await files.save(big.encode(), name="huge.csv")
    with pytest.raises(NodeConfigError, match=r"file 'huge.csv' is 20,971,521 bytes"):
        await transform(files, file=ref, **{"from": "csv"}, to="json")
    rows = [{"v": "x" * 1000}] * (limit // 1000)
    with pytest.raises(NodeConfigError, match=r"the data is [\d,]+ bytes as JSON; files.transform reads at most 20 MB"):
        await transform(files, data=rows, **{"from": "json"}, to="csv")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_more_than_the_row_limit_is_refused(
    files: FileStore, fmt: nodes.tables.TableFormat, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert nodes.tables.MAX_TRANSFORM_ROWS == 1_000_000
    monkeypatch.setattr(nodes.tables, "MAX_TRANSFORM_ROWS", 5)
    ok = await transform(files, data=[{"n": str(i)} for i in range(5)], **{"from": "json"}, to=fmt)
    assert ok["count"] == 5
    six_rows: list[dict[str, Any]] = [{"n": str(i)} for i in range(6)]
    six = await files.save(nodes.tables.render_table(six_rows, ["n"], fmt).encode(), name="six.txt")
    label = {"csv": "CSV", "json": "JSON", "jsonl": "JSONL", "markdown": "markdown table"}[fmt]
    with pytest.raises(NodeConfigError, match=rf"the {label} has more than 5 rows"):
        await transform(files, file=six, **{"from": fmt}, to="json")
    with pytest.raises(NodeConfigError, match="the data has more than 5 rows"):
        await transform(files, data=[{"n": "x"}] * 6, **{"from": "json"}, to=fmt)


async def test_only_the_first_1000_rows_come_back(files: FileStore) -> None:
    text = "n\n" + "".join(f"{i}\n" for i in range(1500))
    out = await transform(files, data=text, **{"from": "csv"}, to="jsonl")
    assert out["count"] == 1500 and len(out["rows"]) == 1000
    assert out["rows"][0] == {"n": "0"} and out["rows"][-1] == {"n": "999"}
    stored = await stored_text(files, out["file"])
    assert out["text"] == stored and stored.count("\n") == 1500 and stored.endswith('{"n": "1499"}\n')


def test_the_real_row_limit_is_one_million() -> None:
    text = "n\n" + "0\n" * 1_000_000
    assert len(nodes.tables.parse_table(text, "csv")) == 1_000_000
    with pytest.raises(nodes.tables.TableError, match=r"the CSV has more than 1,000,000 rows"):
        nodes.tables.parse_table(text + "1\n", "csv")


async def test_text_is_inline_up_to_100_kb(files: FileStore) -> None:
    # A JSONL line {"v": "xxx..."}\n is 10 bytes plus the value.
    fits = await transform(files, data=[{"v": "x" * (100_000 - 10)}], **{"from": "json"}, to="jsonl")
    assert fits["file"]["size"] == 100_000 and fits["text"] is not None
    over = await transform(files, data=[{"v": "x" * (100_000 - 9)}], **{"from": "json"}, to="jsonl")
    assert over["file"]["size"] == 100_001 and over["text"] is None


@pytest.mark.usefixtures("prefect_server", "files")
async def test_a_workflow_converts_a_saved_csv_and_reads_it_as_text(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "store"))
    result = await switchboard.arun(
        {
            "name": "csv-to-markdown",
            "nodes": [
                {"id": "save", "type": "files.save", "params": {"content": SOURCES["csv"], "name": "people.csv"}},
                {
                    "id": "convert",
                    "type": "files.transform",
                    "params": {"file": "{{ nodes.save.output }}", "from": "csv", "to": "markdown"},
                },
                {
                    "id": "read",
                    "type": "document.to_text",
                    "params": {"file": "{{ nodes.convert.output.file }}"},
                },
            ],
        }
    )
    assert result.status == "completed", result.error
    converted = result.nodes["convert"].output
    assert converted["rows"] == ROWS and converted["file"]["name"] == "people.md"
    read = result.nodes["read"].output
    assert read["format"] == "markdown" and read["text"] == converted["text"]
    assert read["text"].startswith("| name | city | note |\n")
