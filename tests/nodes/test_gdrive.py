"""Google Drive nodes against the fake Drive over real HTTP (and the OAuth refresh seam)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import nodes.gdrive.files  # noqa: F401 - registers the gdrive nodes
import switchboard
from nodes.context import NodeContext
from nodes.errors import AuthError, NodeConfigError, ProviderError, TransientError
from nodes.gdrive.transport import q_string
from storage.files import FileStore
from tests.fakes.gdrive import (
    DOC,
    FILES,
    FOLDER,
    SHEET,
    SLIDES,
    UPLOAD,
    FakeDrive,
    google_error,
    rate_limited,
    too_many_requests,
)
from tests.fakes.http import FakeHTTP
from tests.fakes.oauth import CLIENT_SECRET, REFRESH_TOKEN, FakeOAuth
from tests.nodes.context import call_node, make_context, store_resolver

TOKEN = "ya29.test-token"
FIELDS = "nextPageToken,files(id,name,mimeType,size,modifiedTime,parents,webViewLink)"


@pytest.fixture
def drive(fake_http: FakeHTTP) -> FakeDrive:
    return FakeDrive(fake_http, token=TOKEN)


def ctx_for(drive: FakeDrive, files: FileStore | None = None) -> NodeContext:
    return make_context(credential={"token": TOKEN, "base_url": drive.base_url}, files=files)


def resolver_for(drive: FakeDrive) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        if rejected is not None:
            raise AuthError("the token was refused", provider=kind or "gdrive", credential=name, status=401)
        return {"token": TOKEN, "base_url": drive.base_url}

    return resolve


def workflow(node_type: str, params: dict[str, Any]) -> dict[str, Any]:
    node = {"id": "drive", "type": node_type, "credential": "drive", "params": params, "retries": 2, "retry_delay": 0}
    return {"name": "gdrive", "nodes": [node]}


# --- gdrive.list_files -------------------------------------------------------------------------


async def test_the_users_query_is_anded_as_one_group(drive: FakeDrive) -> None:
    drive.add("reports", "Reports", FOLDER)
    drive.add("f1", "Q1 report.pdf", "application/pdf", b"%PDF q1", parents=("reports",))
    drive.add("f2", "Q2 notes", DOC, b"notes", parents=("reports",))
    drive.add("f3", "Q3 report.pdf", "application/pdf", b"x", parents=("root",))

    out = await call_node(
        "gdrive.list_files", {"folder": "reports", "query": "name contains 'q1' or name contains 'q3'"}, ctx_for(drive)
    )

    # without the parentheses Drive would read `(folder and not trashed and q1) or q3` and find f3
    assert [f["id"] for f in out["files"]] == ["f1"]
    assert drive.requests()[0].query["q"] == [
        "'reports' in parents and trashed = false and (name contains 'q1' or name contains 'q3')"
    ]


async def test_list_files_returns_drive_files(drive: FakeDrive) -> None:
    drive.add("reports", "Reports", FOLDER)
    drive.add("f1", "Q1 report.pdf", "application/pdf", b"%PDF q1", parents=("reports",))
    drive.add("f2", "Q2 notes", DOC, b"notes", parents=("reports",))
    drive.add("old", "Q0 report.pdf", "application/pdf", b"old", parents=("reports",), trashed=True)
    drive.add("elsewhere", "Q3 report.pdf", "application/pdf", b"x", parents=("root",))

    out = await call_node("gdrive.list_files", {"folder": "reports", "query": "name contains 'q1'"}, ctx_for(drive))

    assert out == {
        "files": [
            {
                "id": "f1",
                "name": "Q1 report.pdf",
                "mime": "application/pdf",
                "size": 7,
                "modified_time": "2024-05-01T10:00:00.000Z",
                "web_url": "https://drive.google.com/file/d/f1/view?usp=drivesdk",
                "parents": ["reports"],
            }
        ],
        "count": 1,
    }
    (request,) = drive.requests()
    assert request.method == "GET" and request.path == FILES
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.query["q"] == ["'reports' in parents and trashed = false and (name contains 'q1')"]
    assert request.query["fields"] == [FIELDS]
    assert request.query["pageSize"] == ["100"]
    assert "pageToken" not in request.query

    everything = await call_node("gdrive.list_files", {"folder": "reports", "include_trashed": True}, ctx_for(drive))
    assert [f["id"] for f in everything["files"]] == ["f1", "f2", "old"]
    assert everything["files"][1]["size"] is None, "Google Docs have no byte size"
    assert drive.requests()[-1].query["q"] == ["'reports' in parents"]


async def test_paging_follows_next_page_token_and_stops_at_the_limit(drive: FakeDrive) -> None:
    for i in range(12):
        drive.add(f"f{i:02}", f"file {i:02}.txt", "text/plain", b"x", parents=("inbox",))
    drive.page_cap = 4  # Drive may serve fewer than pageSize per page

    out = await call_node("gdrive.list_files", {"folder": "inbox", "limit": 10}, ctx_for(drive))

    assert out["count"] == 10
    assert [f["id"] for f in out["files"]] == [f"f{i:02}" for i in range(10)]
    calls = drive.requests()
    assert [c.query["pageSize"] for c in calls] == [["10"], ["6"], ["2"]], "asks only for what is still missing"
    assert "pageToken" not in calls[0].query
    assert all("pageToken" in c.query for c in calls[1:])
    assert len({c.query["pageToken"][0] for c in calls[1:]}) == 2


async def test_a_large_limit_asks_for_drives_largest_page(drive: FakeDrive) -> None:
    for i in range(3):
        drive.add(f"f{i}", f"f{i}", "text/plain", b"x")
    out = await call_node("gdrive.list_files", {"limit": 1000}, ctx_for(drive))
    assert out["count"] == 3
    assert drive.requests()[0].query["pageSize"] == ["1000"]
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        await call_node("gdrive.list_files", {"limit": 1001}, ctx_for(drive))


async def test_a_folder_id_is_escaped_inside_the_query(drive: FakeDrive) -> None:
    odd = "it's a \\ folder"
    drive.add("inside", "inside.txt", "text/plain", b"x", parents=(odd,))
    drive.add("outside", "outside.txt", "text/plain", b"x", parents=("root",))
    out = await call_node("gdrive.list_files", {"folder": odd}, ctx_for(drive))
    assert [f["id"] for f in out["files"]] == ["inside"]
    assert drive.requests()[0].query["q"] == ["'it\\'s a \\\\ folder' in parents and trashed = false"]
    assert q_string("a'b\\c") == "'a\\'b\\\\c'"


# --- gdrive.download ---------------------------------------------------------------------------


async def test_a_binary_file_is_stored_byte_for_byte(drive: FakeDrive, files: FileStore) -> None:
    content = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    drive.add("img", "photo.png", "image/png", content)

    out = await call_node("gdrive.download", {"file_id": "img"}, ctx_for(drive, files))

    assert out["drive_id"] == "img" and out["source_mime"] == "image/png" and out["exported_as"] is None
    assert out["file"]["name"] == "photo.png" and out["file"]["mime"] == "image/png"
    assert out["file"]["size"] == len(content)
    ref, stored = await files.load(out["file"]["file_id"])
    assert stored == content and ref == out["file"]
    meta, media = drive.requests(f"{FILES}/img")
    assert meta.query == {"fields": ["id,name,mimeType,size"], "supportsAllDrives": ["true"]}
    assert media.query == {"alt": ["media"], "supportsAllDrives": ["true"]}
    assert {meta.headers["authorization"], media.headers["authorization"]} == {f"Bearer {TOKEN}"}
    assert drive.requests(f"{FILES}/img/export") == []


async def test_a_google_doc_is_exported_to_text(drive: FakeDrive, files: FileStore) -> None:
    drive.add("doc1", "Meeting notes", DOC, "Agenda: ship it ✓\n".encode())

    out = await call_node("gdrive.download", {"file_id": "doc1"}, ctx_for(drive, files))

    assert out["exported_as"] == "text" and out["source_mime"] == DOC
    assert out["file"]["name"] == "Meeting notes.txt" and out["file"]["mime"] == "text/plain"
    _, stored = await files.load(out["file"]["file_id"])
    assert stored.decode() == "Agenda: ship it ✓\n"
    (export,) = drive.requests(f"{FILES}/doc1/export")
    assert export.query == {"mimeType": ["text/plain"]}
    assert all(r.query.get("alt") != ["media"] for r in drive.requests(f"{FILES}/doc1"))


async def test_sheets_default_to_csv_and_docs_export_to_pdf(drive: FakeDrive, files: FileStore) -> None:
    drive.add("sheet", "Budget", SHEET, b"a,b\n1,2\n")
    drive.add("deck", "Pitch.pdf", SLIDES, b"slide text")
    ctx = ctx_for(drive, files)

    sheet = await call_node("gdrive.download", {"file_id": "sheet"}, ctx)
    assert (sheet["file"]["name"], sheet["file"]["mime"], sheet["exported_as"]) == ("Budget.csv", "text/csv", "csv")
    assert (await files.load(sheet["file"]["file_id"]))[1] == b"a,b\n1,2\n"

    deck = await call_node("gdrive.download", {"file_id": "deck", "export_as": "pdf"}, ctx)
    assert deck["file"]["name"] == "Pitch.pdf", "no doubled extension"
    assert (await files.load(deck["file"]["file_id"]))[1].startswith(b"%PDF")
    assert drive.requests(f"{FILES}/deck/export")[0].query == {"mimeType": ["application/pdf"]}


async def test_an_impossible_export_is_a_config_error_naming_the_formats(drive: FakeDrive, files: FileStore) -> None:
    drive.add("sheet", "Budget", SHEET, b"a,b\n")
    drive.add("folder", "Team", FOLDER)
    drive.add("bin", "data.bin", "application/octet-stream", b"\x00")
    ctx = ctx_for(drive, files)
    with pytest.raises(
        NodeConfigError, match=r"'Budget' is a Google Sheets spreadsheet: it can be exported as csv or pdf, not text"
    ):
        await call_node("gdrive.download", {"file_id": "sheet", "export_as": "text"}, ctx)
    with pytest.raises(NodeConfigError, match="is a folder"):
        await call_node("gdrive.download", {"file_id": "folder"}, ctx)
    with pytest.raises(NodeConfigError, match="only Google Docs, Sheets, Slides and Drawings can be exported"):
        await call_node("gdrive.download", {"file_id": "bin", "export_as": "pdf"}, ctx)
    assert drive.requests(f"{FILES}/sheet/export") == [] and drive.requests(f"{FILES}/bin") != []
    assert all(r.query.get("alt") != ["media"] for r in drive.requests(f"{FILES}/bin"))


async def test_an_export_over_drives_limit_is_a_permanent_provider_error(drive: FakeDrive, files: FileStore) -> None:
    drive.add("big", "Huge doc", DOC, b"x" * 64)
    drive.export_limit = 10
    with pytest.raises(ProviderError, match=r"This file is too large to be exported\.") as raised:
        await call_node("gdrive.download", {"file_id": "big"}, ctx_for(drive, files))
    assert type(raised.value) is ProviderError and raised.value.status == 403


# --- gdrive.upload -----------------------------------------------------------------------------


async def test_upload_sends_a_multipart_related_body_the_fake_parses(drive: FakeDrive, files: FileStore) -> None:
    drive.add("reports", "Reports", FOLDER)
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--boundary-ish\r\n"
    ref = await files.save(content, name="chart.png")

    out = await call_node(
        "gdrive.upload", {"file": ref, "folder": "reports", "name": "Q1 chart.png"}, ctx_for(drive, files)
    )

    (upload,) = drive.uploads
    assert upload.metadata == {"name": "Q1 chart.png", "mimeType": "image/png", "parents": ["reports"]}
    assert upload.media_type == "image/png"
    assert upload.content == content
    assert out == {
        "id": upload.file_id,
        "name": "Q1 chart.png",
        "mime": "image/png",
        "size": len(content),
        "web_url": f"https://drive.google.com/file/d/{upload.file_id}/view?usp=drivesdk",
    }
    (request,) = drive.requests(UPLOAD, "POST")
    assert request.query["uploadType"] == ["multipart"]
    assert request.query["fields"] == ["id,name,mimeType,size,modifiedTime,parents,webViewLink"]
    assert request.headers["content-type"].startswith("multipart/related; boundary=")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    # the uploaded file is really in the fake Drive now
    listed = await call_node("gdrive.list_files", {"folder": "reports"}, ctx_for(drive))
    assert [f["name"] for f in listed["files"]] == ["Q1 chart.png"]


async def test_upload_to_a_google_type_converts_and_keeps_the_media_type(drive: FakeDrive, files: FileStore) -> None:
    ref = await files.save(b"# Notes\n", name="notes.md")
    out = await call_node("gdrive.upload", {"file": ref, "mime": DOC}, ctx_for(drive, files))
    (upload,) = drive.uploads
    assert upload.metadata == {"name": "notes.md", "mimeType": DOC}
    assert upload.media_type == "text/markdown"
    assert out["mime"] == DOC and out["size"] is None
    assert out["web_url"] == f"https://docs.google.com/document/d/{upload.file_id}/edit?usp=drivesdk"


async def test_upload_into_a_missing_folder_carries_googles_message(drive: FakeDrive, files: FileStore) -> None:
    ref = await files.save(b"x", name="x.txt")
    with pytest.raises(ProviderError, match=r"gdrive 404: File not found: nowhere\."):
        await call_node("gdrive.upload", {"file": ref, "folder": "nowhere"}, ctx_for(drive, files))
    with pytest.raises(NodeConfigError, match="no file with id"):
        await call_node("gdrive.upload", {"file": {**ref, "file_id": "missing"}}, ctx_for(drive, files))


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (rate_limited(), TransientError),
        (rate_limited(user=True, retry_after="2"), TransientError),
        (too_many_requests("3"), TransientError),
    ],
)
async def test_rate_limits_are_transient(drive: FakeDrive, reply: Any, error: type[Exception]) -> None:
    drive.fail_next(reply)
    with pytest.raises(error, match="Rate Limit Exceeded") as raised:
        await call_node("gdrive.list_files", {}, ctx_for(drive))
    assert type(raised.value) is error
    assert raised.value.status == reply.status  # type: ignore[attr-defined]
    if "Retry-After" in reply.headers:
        assert raised.value.retry_after == float(reply.headers["Retry-After"])  # type: ignore[attr-defined]
    assert len(drive.requests()) == 1, "no library-level retries"


async def test_other_403s_are_permanent(drive: FakeDrive) -> None:
    drive.fail_next(
        google_error(403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file.")
    )
    with pytest.raises(ProviderError, match="sufficient permissions") as raised:
        await call_node("gdrive.list_files", {}, ctx_for(drive))
    assert type(raised.value) is ProviderError


async def test_a_missing_file_is_a_provider_error_with_googles_message(drive: FakeDrive, files: FileStore) -> None:
    with pytest.raises(ProviderError, match=r"File not found: nope\.") as raised:
        await call_node("gdrive.download", {"file_id": "nope"}, ctx_for(drive, files))
    assert type(raised.value) is ProviderError and raised.value.status == 404
    assert len(drive.requests(f"{FILES}/nope")) == 1


@pytest.mark.usefixtures("prefect_server")
async def test_a_429_is_retried_in_a_workflow(drive: FakeDrive) -> None:
    drive.add("f1", "a.txt", "text/plain", b"a")
    drive.fail_next(too_many_requests("0"))
    result = await switchboard.arun(
        workflow("gdrive.list_files", {}), credential_resolver=resolver_for(drive), record=False
    )
    node = result.nodes["drive"]
    assert (result.status, node.status, node.attempts) == ("completed", "completed", 2), result.error
    assert node.output["count"] == 1
    assert len(drive.requests()) == 2


@pytest.mark.usefixtures("prefect_server")
async def test_a_403_rate_limit_is_retried_in_a_workflow(drive: FakeDrive) -> None:
    drive.add("f1", "a.txt", "text/plain", b"a")
    drive.fail_next(rate_limited(user=True))
    result = await switchboard.arun(
        workflow("gdrive.list_files", {"query": "name = 'a.txt'"}),
        credential_resolver=resolver_for(drive),
        record=False,
    )
    node = result.nodes["drive"]
    assert (result.status, node.attempts) == ("completed", 2), result.error
    assert [f["id"] for f in node.output["files"]] == ["f1"]
    assert len(drive.requests()) == 2


@pytest.mark.usefixtures("prefect_server")
async def test_a_bad_query_fails_a_workflow_without_retrying(drive: FakeDrive) -> None:
    result = await switchboard.arun(
        workflow("gdrive.list_files", {"query": "name has 'x'"}),
        credential_resolver=resolver_for(drive),
        record=False,
    )
    node = result.nodes["drive"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert "gdrive 400: Invalid Value" in (node.error or "")
    assert len(drive.requests()) == 1


async def test_download_needs_the_file_store_before_it_downloads(drive: FakeDrive) -> None:
    drive.add("img", "photo.png", "image/png", b"png")
    with pytest.raises(NodeConfigError, match="needs Switchboard's file store"):
        await call_node("gdrive.download", {"file_id": "img"}, ctx_for(drive))
    assert drive.requests(f"{FILES}/img") == []


@pytest.mark.usefixtures("prefect_server", "engine")
async def test_a_workflow_exports_a_doc_and_uploads_the_copy(
    drive: FakeDrive, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "store"))
    drive.add("doc1", "Minutes", DOC, b"We agreed.\n")
    drive.add("archive", "Archive", FOLDER)
    definition = {
        "name": "gdrive-copy",
        "nodes": [
            {"id": "get", "type": "gdrive.download", "credential": "drive", "params": {"file_id": "doc1"}},
            {
                "id": "put",
                "type": "gdrive.upload",
                "credential": "drive",
                "params": {"file": "{{ nodes.get.output.file }}", "folder": "archive"},
            },
        ],
    }
    result = await switchboard.arun(definition, credential_resolver=resolver_for(drive))
    assert result.status == "completed", result.error
    (upload,) = drive.uploads
    assert upload.metadata == {"name": "Minutes.txt", "mimeType": "text/plain", "parents": ["archive"]}
    assert upload.content == b"We agreed.\n"
    assert result.nodes["put"].output["id"] == upload.file_id


# --- OAuth -------------------------------------------------------------------------------------


async def test_an_expired_token_is_refreshed_once_for_five_concurrent_nodes(
    engine: AsyncEngine, fake_http: FakeHTTP
) -> None:
    oauth = FakeOAuth(fake_http)
    drive = FakeDrive(fake_http)  # FakeOAuth decides which tokens Drive accepts
    drive.add("f1", "a.txt", "text/plain", b"a", parents=("inbox",))
    resolver = await store_resolver(
        engine, provider="gdrive", secret=oauth.credential_secret(), base_url=drive.base_url
    )

    outputs = await asyncio.gather(
        *(
            call_node("gdrive.list_files", {"folder": "inbox"}, make_context(resolver=resolver, node_id=f"n{i}"))
            for i in range(5)
        )
    )

    assert [[f["id"] for f in o["files"]] for o in outputs] == [["f1"]] * 5
    assert len(oauth.token_requests()) == 1
    listed = drive.requests()
    assert {r.headers["authorization"] for r in listed} == {"Bearer stale-token", "Bearer fresh-token-1"}
    assert sum(r.headers["authorization"] == "Bearer fresh-token-1" for r in listed) == 5
    # the refreshed token was stored: the next call uses it straight away
    await call_node("gdrive.list_files", {"folder": "inbox"}, make_context(resolver=resolver))
    assert len(oauth.token_requests()) == 1
    assert drive.requests()[-1].headers["authorization"] == "Bearer fresh-token-1"


async def test_an_upload_refused_with_401_is_sent_again_whole(
    engine: AsyncEngine, fake_http: FakeHTTP, tmp_path: Path
) -> None:
    oauth = FakeOAuth(fake_http)
    drive = FakeDrive(fake_http)
    store = FileStore(engine, tmp_path / "blobs")
    ref = await store.save(b"report body", name="report.txt")
    resolver = await store_resolver(
        engine, provider="gdrive", secret=oauth.credential_secret(), base_url=drive.base_url
    )
    ctx = make_context(resolver=resolver)
    ctx.files_backend = store

    out = await call_node("gdrive.upload", {"file": ref}, ctx)

    first, second = drive.requests(UPLOAD, "POST")
    assert (first.headers["authorization"], second.headers["authorization"]) == (
        "Bearer stale-token",
        "Bearer fresh-token-1",
    )
    assert first.body == second.body
    (upload,) = drive.uploads
    assert (upload.metadata, upload.content, out["id"]) == (
        {"name": "report.txt", "mimeType": "text/plain"},
        b"report body",
        upload.file_id,
    )
    assert len(oauth.token_requests()) == 1


async def test_a_revoked_grant_says_which_credential_to_reconnect(engine: AsyncEngine, fake_http: FakeHTTP) -> None:
    oauth = FakeOAuth(fake_http)
    drive = FakeDrive(fake_http)
    drive.add("f1", "a.txt", "text/plain", b"a")
    oauth.revoke()
    resolver = await store_resolver(
        engine, provider="gdrive", secret=oauth.credential_secret(), base_url=drive.base_url
    )

    with pytest.raises(AuthError, match=r"reconnect credential 'test-credential'") as caught:
        await call_node("gdrive.list_files", {}, make_context(resolver=resolver))

    message = str(caught.value)
    for secret in (REFRESH_TOKEN, CLIENT_SECRET, oauth.stale_token, "fresh-token"):
        assert secret not in message
    assert len(oauth.token_requests()) == 1
    assert [r.headers["authorization"] for r in drive.requests()] == ["Bearer stale-token"]


async def test_a_plain_token_refused_is_not_refreshed(fake_http: FakeHTTP) -> None:
    drive = FakeDrive(fake_http, token="good-token")
    ctx = make_context(credential={"token": "bad-token", "base_url": drive.base_url})
    with pytest.raises(AuthError, match="reconnect credential 'test-credential'") as caught:
        await call_node("gdrive.list_files", {}, ctx)
    assert "bad-token" not in str(caught.value)
    assert len(drive.requests()) == 1
