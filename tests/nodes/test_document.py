"""document.to_text over real PDF, DOCX, HTML, Markdown and text files in a real file store."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from pydantic import ValidationError

import nodes.document  # registers document.to_text
from nodes.errors import NodeConfigError
from storage.files import FileStore
from tests.nodes.context import call_node, make_context
from tests.nodes.documents import SAMPLE_HTML, encrypted_pdf, minimal_pdf, sample_docx

PAGES = ["Invoice 2024-001 (draft)\nTotal due: 120 EUR", "Terms: payment within 30 days", "Page three: thank you"]
PDF_TEXT = "Invoice 2024-001 (draft)\nTotal due: 120 EUR\n\nTerms: payment within 30 days\n\nPage three: thank you"
DOCX_TEXT = (
    "Quarterly report\nRevenue grew in every region.\nRegion | Amount\nNorth | 1,200\nSouth | 950\n"
    "Next steps: hire & expand."
)
HTML_TEXT = "Release notes\nFish & chips <3 café — fast.\nFirst item\nSecond item\nLine one\nLine two\nDone."
MARKDOWN = "# Notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n* keep **this** as is  \n"


async def to_text(files: FileStore, ref: dict[str, Any], **params: Any) -> Any:
    return await call_node("document.to_text", {"file": ref, **params}, make_context(files=files))


async def test_pdf_pages_in_order(files: FileStore) -> None:
    ref = await files.save(minimal_pdf(PAGES), name="invoice.pdf")
    assert ref["mime"] == "application/pdf"
    out = await to_text(files, ref)
    assert out == {"text": PDF_TEXT, "chars": len(PDF_TEXT), "truncated": False, "pages": 3, "format": "pdf"}


async def test_pdf_max_pages_and_max_chars_truncate(files: FileStore) -> None:
    ref = await files.save(minimal_pdf(PAGES), name="invoice.pdf")
    two = await to_text(files, ref, max_pages=2)
    assert two["text"] == PDF_TEXT.rsplit("\n\n", 1)[0] and "Page three" not in two["text"]
    assert two["truncated"] is True and two["pages"] == 3
    assert (await to_text(files, ref, max_pages=3))["truncated"] is False
    assert (await to_text(files, ref, max_pages=50))["text"] == PDF_TEXT
    short = await to_text(files, ref, max_chars=7)
    assert short == {"text": "Invoice", "chars": 7, "truncated": True, "pages": 3, "format": "pdf"}
    exact = await to_text(files, ref, max_chars=len(PDF_TEXT))
    assert exact["text"] == PDF_TEXT and exact["truncated"] is False


async def test_a_long_pdf_stops_reading_once_max_chars_is_reached(files: FileStore) -> None:
    pages = [f"Page {n} " + "word " * 20 for n in range(1, 41)]
    ref = await files.save(minimal_pdf(pages), name="long.pdf")
    out = await to_text(files, ref, max_chars=250)
    assert out["chars"] == 250 and out["truncated"] is True and out["pages"] == 40
    assert out["text"].startswith("Page 1 word") and "Page 3 " in out["text"] and "Page 4 " not in out["text"]


async def test_docx_paragraphs_and_table_cells_in_order(files: FileStore) -> None:
    ref = await files.save(sample_docx(), name="report.docx")
    out = await to_text(files, ref)
    assert out == {"text": DOCX_TEXT, "chars": len(DOCX_TEXT), "truncated": False, "pages": None, "format": "docx"}
    cut = await to_text(files, ref, max_chars=16, max_pages=1)
    assert cut["text"] == "Quarterly report" and cut["truncated"] is True


async def test_html_drops_script_style_and_head(files: FileStore) -> None:
    ref = await files.save(SAMPLE_HTML.encode(), name="notes.html")
    out = await to_text(files, ref)
    assert out["format"] == "html" and out["text"] == HTML_TEXT and out["pages"] is None
    for hidden in ("secret", "color: red", "Head title", "also dropped", "console"):
        assert hidden not in out["text"]


async def test_markdown_and_text_come_back_as_they_are(files: FileStore) -> None:
    md = await to_text(files, await files.save(MARKDOWN.encode(), name="notes.md"))
    assert md == {"text": MARKDOWN, "chars": len(MARKDOWN), "truncated": False, "pages": None, "format": "markdown"}
    plain = "line one\r\nline <b>two</b> &amp; more\n"
    txt = await to_text(files, await files.save(plain.encode(), name="notes.txt"))
    assert txt["text"] == plain and txt["format"] == "text"
    bom = await to_text(files, await files.save(b"\xef\xbb\xbfcaf\xc3\xa9", name="bom.txt"))
    assert bom["text"] == "café"
    legacy = await to_text(files, await files.save("café".encode("cp1252"), name="legacy.txt"))
    assert legacy["text"] == "café"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("scan.pdf", minimal_pdf(["by extension"]), "pdf"),
        ("report.DOCX", sample_docx(), "docx"),
        ("page.htm", SAMPLE_HTML.encode(), "html"),
        ("README.markdown", MARKDOWN.encode(), "markdown"),
        ("download", minimal_pdf(["by sniffing"]), "pdf"),
        ("download", sample_docx(), "docx"),
        ("download", SAMPLE_HTML.encode(), "html"),
        ("download", b"just some words\n", "text"),
    ],
)
async def test_format_falls_back_to_the_extension_then_the_bytes(
    files: FileStore, name: str, content: bytes, expected: str
) -> None:
    ref = await files.save(content, name=name, mime="application/octet-stream")
    out = await to_text(files, ref)
    assert out["format"] == expected
    if expected == "pdf":
        assert out["text"] in ("by extension", "by sniffing") and out["pages"] == 1
    if expected == "docx":
        assert out["text"] == DOCX_TEXT
    if expected == "html":
        assert out["text"] == HTML_TEXT


async def test_the_media_type_wins_over_the_extension(files: FileStore) -> None:
    ref = await files.save(SAMPLE_HTML.encode(), name="page.txt", mime="text/html")
    assert (await to_text(files, ref))["format"] == "html"
    csv = await files.save(b"a,b\n1,2\n", name="table.csv")
    assert csv["mime"] == "text/csv"
    assert await to_text(files, csv) == {
        "text": "a,b\n1,2\n",
        "chars": 8,
        "truncated": False,
        "pages": None,
        "format": "text",
    }


async def test_a_password_protected_pdf_is_refused_but_an_empty_password_opens(files: FileStore) -> None:
    locked = await files.save(encrypted_pdf(["top secret"], user_password="s3cret"), name="locked.pdf")
    with pytest.raises(NodeConfigError, match=r"file 'locked.pdf' is an encrypted PDF that needs a password"):
        await to_text(files, locked)
    open_ = await files.save(encrypted_pdf(["readable anyway"], user_password=""), name="owner-only.pdf")
    out = await to_text(files, open_)
    assert out["text"] == "readable anyway" and out["pages"] == 1


async def test_corrupt_files_name_the_file(files: FileStore) -> None:
    pdf = minimal_pdf(PAGES)
    cases = [
        (pdf[: len(pdf) // 2], "half.pdf", r"file 'half.pdf' is not a readable PDF"),
        (b"%PDF-1.4\nnot really a pdf", "fake.pdf", r"file 'fake.pdf' is not a readable PDF"),
        (b"", "empty.pdf", r"file 'empty.pdf' is not a readable PDF"),
        (b"PK\x03\x04 truncated zip", "broken.docx", r"file 'broken.docx' is not a readable Word \(.docx\) document"),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<not-wordprocessingml/>")
    cases.append((buffer.getvalue(), "hollow.docx", r"file 'hollow.docx' is not a readable Word \(.docx\) document"))
    for content, name, message in cases:
        ref = await files.save(content, name=name)
        with pytest.raises(NodeConfigError, match=message):
            await to_text(files, ref)


async def test_unsupported_types_list_the_supported_formats(files: FileStore) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32)
    supported = r"supported: PDF, Word \(.docx\), HTML, Markdown and plain text"
    cases = [
        (await files.save(png, name="chart.png"), r"file 'chart.png' \(image/png\) is not a document type"),
        (await files.save(b"any bytes", name="sheet.xlsx"), r"file 'sheet.xlsx' \(application/vnd.openxml"),
        (await files.save(png, name="blob", mime="application/octet-stream"), r"file 'blob' \(application/octet"),
    ]
    for ref, message in cases:
        with pytest.raises(NodeConfigError, match=message) as caught:
            await to_text(files, ref)
        assert caught.match(supported)


async def test_limits_and_missing_files(files: FileStore) -> None:
    ref = await files.save(b"text", name="a.txt")
    with pytest.raises(ValidationError, match="less than or equal to 5000000"):
        await to_text(files, ref, max_chars=5_000_001)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        await to_text(files, ref, max_chars=0)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        await to_text(files, ref, max_pages=0)
    big = "é" * 5_000_100
    out = await to_text(files, await files.save(big.encode(), name="big.txt"), max_chars=5_000_000)
    assert out["chars"] == 5_000_000 and out["truncated"] is True
    with pytest.raises(NodeConfigError, match="no file with id 'gone'"):
        await to_text(files, {**ref, "file_id": "gone"})


async def test_without_a_file_store_the_node_says_so() -> None:
    with pytest.raises(NodeConfigError, match="needs Switchboard's file store"):
        await call_node(
            "document.to_text", {"file": {"file_id": "x", "name": "a.pdf", "mime": "application/pdf", "size": 1}}
        )
    assert nodes.document.detect_format({"name": "a.pdf", "mime": "application/pdf"}, b"") == "pdf"
