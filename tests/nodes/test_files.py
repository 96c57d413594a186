"""files.save / files.load over the content-addressed store, on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

import switchboard
from nodes.errors import NodeConfigError
from storage.files import FileStore, FileStoreError
from tests.nodes.context import call_node, make_context

pytestmark = pytest.mark.both_databases  # file metadata rows, on both backends


async def test_save_and_load_text_and_copies(files: FileStore) -> None:
    ctx = make_context(files=files)
    ref = await call_node("files.save", {"content": "héllo", "name": "note.md"}, ctx)
    assert ref["name"] == "note.md" and ref["mime"] == "text/markdown" and ref["size"] == len("héllo".encode())
    loaded = await call_node("files.load", {"file_id": ref["file_id"]}, ctx)
    assert loaded == {"file": ref, "text": "héllo"}
    copy = await call_node("files.save", {"file": ref, "name": "copy.txt"}, ctx)
    assert copy["file_id"] != ref["file_id"] and copy["mime"] == "text/plain"
    blobs = [p for p in (files.root).rglob("*") if p.is_file()]
    assert len(blobs) == 1, "identical content is stored once"


async def test_binary_files_have_no_text_and_corruption_is_detected(files: FileStore) -> None:
    ref = await files.save(bytes(range(256)), name="blob.bin")
    loaded = await call_node("files.load", {"file_id": ref["file_id"]}, make_context(files=files))
    assert loaded["text"] is None and loaded["file"]["mime"] == "application/octet-stream"
    next(p for p in files.root.rglob("*") if p.is_file()).write_bytes(b"tampered")
    with pytest.raises(FileStoreError, match="corrupted"):
        await files.load(ref["file_id"])


async def test_mistakes_are_config_errors(files: FileStore) -> None:
    ctx = make_context(files=files)
    with pytest.raises(NodeConfigError, match="no file with id 'nope'"):
        await call_node("files.load", {"file_id": "nope"}, ctx)
    with pytest.raises(ValueError, match="exactly one of"):
        await call_node("files.save", {"name": "x.txt"}, ctx)


@pytest.mark.usefixtures("prefect_server", "files")
async def test_a_workflow_saves_and_loads_a_file(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "store"))
    result = await switchboard.arun(
        {
            "name": "files",
            "nodes": [
                {"id": "save", "type": "files.save", "params": {"content": "report body", "name": "report.txt"}},
                {"id": "load", "type": "files.load", "params": {"file_id": "{{ nodes.save.output.file_id }}"}},
            ],
        }
    )
    assert result.status == "completed", result.error
    assert result.nodes["load"].output["text"] == "report body"
    assert any(p.is_file() for p in (tmp_path / "store").rglob("*"))
