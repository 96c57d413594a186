"""File names and media types: control characters, paths and non-media-types are refused.

A stored file's name and media type reach HTTP headers and multipart bodies (``gdrive.upload``),
Slack messages and downloads, so the file store refuses unsafe ones whoever saves the file, and
``files.save`` / ``files.transform`` name the offending field before anything runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import switchboard
from flows.model import DefinitionError
from storage.files import FileStore, FileStoreError
from tests.nodes.context import call_node, make_context

BAD_NAMES = [
    ("report\n.txt", "U+000A"),
    ("report\r\nContent-Type: text/html.txt", "U+000D"),
    ("tab\there.txt", "U+0009"),
    ("nul\x00.txt", "U+0000"),
    ("bell\x07.txt", "U+0007"),
    ("del\x7f.txt", "U+007F"),
    ("c1\x85next-line.txt", "U+0085"),
    ("csi\x9b31m.txt", "U+009B"),
    ("line\u2028separator.txt", "U+2028"),
    ("invoice\u202efdp.exe", "U+202E"),
    ("../../etc/passwd", "path separator"),
    ("reports/q1.txt", "path separator"),
    ("reports\\q1.txt", "path separator"),
    ("..", "is not a file name"),
    (".", "is not a file name"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("x" * 256, "at most 255"),
]
GOOD_NAMES = ["report.txt", "naïve résumé (final).pdf", "a..b.txt", "🎉 party.md", "..hidden", "日本語.csv"]
BAD_MIMES = [
    "text/plain\r\nX-Injected: 1",
    "text/plain\n",
    "text",
    "text/",
    "/plain",
    "text /plain",
    'text/plain; charset="utf\n8"',
    "text/plain; charset",
    "x" * 101 + "/y",
]
GOOD_MIMES = [
    "text/plain",
    "text/csv; charset=utf-8",
    'text/plain; format="flowed"',
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "image/svg+xml",
]


@pytest.mark.parametrize(("name", "fragment"), BAD_NAMES)
async def test_the_store_refuses_unsafe_names(files: FileStore, name: str, fragment: str) -> None:
    with pytest.raises(FileStoreError) as info:
        await files.save(b"x", name=name)
    message = str(info.value)
    assert message.startswith("the file name ") and fragment in message
    assert "\n" not in message and "\r" not in message and "\u202e" not in message


@pytest.mark.parametrize("mime", BAD_MIMES)
async def test_the_store_refuses_what_is_not_a_media_type(files: FileStore, mime: str) -> None:
    with pytest.raises(FileStoreError, match=r"^the media type .* (is not a media type|at most 100)") as info:
        await files.save(b"x", name="ok.txt", mime=mime)
    assert "\n" not in str(info.value) and "\r" not in str(info.value)


async def test_safe_names_and_media_types_are_stored_as_given(files: FileStore) -> None:
    for name in GOOD_NAMES:
        ref = await files.save(b"x", name=name)
        assert (await files.load(ref["file_id"]))[0]["name"] == name
    for mime in GOOD_MIMES:
        ref = await files.save(b"x", name="ok.bin", mime=mime)
        assert ref["mime"] == mime


@pytest.mark.parametrize("node", ["files.save", "files.transform"])
async def test_file_nodes_name_the_field(files: FileStore, node: str) -> None:
    base: dict[str, Any] = (
        {"content": "hello"} if node == "files.save" else {"data": [{"a": 1}], "from": "json", "to": "csv"}
    )
    with pytest.raises(ValueError, match=r"name\n.*the file name 'a\\nb.txt' has the control character U\+000A"):
        await call_node(node, {**base, "name": "a\nb.txt"}, make_context(files=files))
    if node == "files.save":
        with pytest.raises(ValueError, match=r"mime\n.*the media type 'text/plain\\r\\nX: 1' is not a media type"):
            await call_node(node, {**base, "name": "ok.txt", "mime": "text/plain\r\nX: 1"}, make_context(files=files))


def test_a_literal_bad_name_fails_validation_naming_node_and_field() -> None:
    node = {"id": "save", "type": "files.save", "params": {"content": "x", "name": "../x"}}
    with pytest.raises(DefinitionError) as info:
        switchboard.validate({"name": "names", "nodes": [node]})
    [problem] = info.value.problems
    assert problem.node == "save" and problem.field == "params.name"
    assert "path separator" in problem.message


@pytest.mark.usefixtures("prefect_server", "files")  # files: the engine fixture migrates the database
async def test_a_templated_bad_name_fails_the_node_with_a_config_error(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "store"))
    result = await switchboard.arun(
        {
            "name": "names",
            "inputs": {"title": {"type": "string", "required": True}},
            "nodes": [
                {"id": "save", "type": "files.save", "params": {"content": "x", "name": "{{ inputs.title }}.txt"}},
            ],
        },
        {"title": "Q1\r\nContent-Type: text/html"},
    )
    assert result.status == "failed"
    error = result.nodes["save"].error or ""
    assert error.startswith("params.name: ") and "has the control character U+000D" in error
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*"))


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"data": DEEP, "from": "json"}, "the JSON nests deeper than 64 levels (at line 1 column 65)"),
        ({"data": '[{"a": ' + DEEP + "}]", "from": "json"}, "the JSON nests deeper than 64 levels"),
        ({"data": '{"a": 1}\n{"a": ' + DEEP + "}\n", "from": "jsonl"}, "line 2 of the JSONL nests deeper than 64"),
        ({"data": '[{"a": NaN}]', "from": "json"}, "the JSON has NaN, which is not a JSON number"),
        ({"data": '{"a": Infinity}\n', "from": "jsonl"}, "line 1 of the JSONL has Infinity"),
        ({"data": '[{"a": 1, "a": 2}]', "from": "json"}, "the JSON has the key 'a' twice in one object"),
        ({"data": '[{"n": ' + "9" * 5000 + "}]", "from": "json"}, "the JSON has an integer of 5,000 digits"),
        ({"data": '{"n": ' + "9" * 5000 + "}", "from": "jsonl"}, "line 1 of the JSONL has an integer of 5,000"),
    ],
)
async def test_transform_parses_json_within_bounds(files: FileStore, params: dict[str, Any], fragment: str) -> None:
    from nodes.errors import NodeConfigError

    with pytest.raises(NodeConfigError) as info:
        await call_node("files.transform", {**params, "to": "csv"}, make_context(files=files))
    assert fragment in str(info.value)


async def test_transform_reads_deep_json_files_as_a_clear_error(files: FileStore) -> None:
    from nodes.errors import NodeConfigError

    ref = await files.save(('[{"a": ' + DEEP + "}]").encode(), name="deep.json")
    with pytest.raises(NodeConfigError, match=r"the JSON nests deeper than 64 levels .* \(file 'deep.json'\)"):
        await call_node("files.transform", {"file": ref, "from": "json", "to": "csv"}, make_context(files=files))
    rows: list[Any] = []
    for _ in range(10_000):
        rows = [rows]
    with pytest.raises(NodeConfigError, match="the data nests too deeply"):
        await call_node(
            "files.transform", {"data": [{"a": rows}], "from": "json", "to": "csv"}, make_context(files=files)
        )
