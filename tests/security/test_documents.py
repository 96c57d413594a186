"""Compressed documents that unpack to gigabytes: document.to_text refuses them, naming the cap.

Each hostile file is built here (a zip or a PDF with a highly compressible part: a few hundred
kB that inflate to hundreds of MiB) and read by ``document.to_text`` in its own process with
its address space capped (``document_probe``), so the test measures the peak memory a user's
worker would reach, and an unbounded reader fails the test instead of the machine.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodes.document import DOCX_MIME
from tests.nodes.documents import sample_docx

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CEILING = 1 << 30
#: Peak RSS a refused document may cost (the interpreter with the node modules is ~150 MiB).
RSS_BOUND_MIB = 400
MIB = 1024 * 1024

PARAGRAPH = b"<w:p><w:r><w:t>lol</w:t></w:r></w:p>"


def _docx_with_body(extra: Iterator[bytes], *, level: int = 9) -> bytes:
    """The sample document with ``extra`` (chunks of WordprocessingML) streamed into its body."""
    source = zipfile.ZipFile(io.BytesIO(sample_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for member in source.infolist():
            data = source.read(member)
            if member.filename != "word/document.xml":
                archive.writestr(member.filename, data)
                continue
            head, body, tail = data.partition(b"<w:body>")
            with archive.open("word/document.xml", "w") as stream:
                stream.write(head + body)
                for chunk in extra:
                    stream.write(chunk)
                stream.write(tail)
    return out.getvalue()


def _paragraphs(total: int) -> Iterator[bytes]:
    chunk = PARAGRAPH * (MIB // len(PARAGRAPH))
    for _ in range(total // len(chunk)):
        yield chunk


def _lying_docx() -> bytes:
    """A document whose central directory says document.xml is 1,000 bytes; it inflates to 100 MiB."""
    data = bytearray(_docx_with_body(_paragraphs(100 * MIB)))
    at = 0
    while (at := data.find(b"PK\x01\x02", at)) >= 0:  # central directory entries
        (name_length,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_length] == b"word/document.xml":
            struct.pack_into("<I", data, at + 24, 1000)  # the uncompressed size
        at += 46
    return bytes(data)


def _entity_docx() -> bytes:
    entities = b'<!DOCTYPE w:document [<!ENTITY a "lollollollollol">' + b"".join(
        b'<!ENTITY %s "%s">' % (b"a" * (n + 1), (b"&" + b"a" * n + b";") * 10) for n in range(1, 9)
    )
    source = zipfile.ZipFile(io.BytesIO(sample_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "word/document.xml":
                head, decl, rest = data.partition(b"?>")
                data = head + decl + entities + b"]>" + rest.replace(b"Revenue grew", b"&" + b"a" * 9 + b"; grew")
            archive.writestr(member.filename, data)
    return out.getvalue()


def _crowded_docx(members: int) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(sample_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for member in source.infolist():
            archive.writestr(member.filename, source.read(member))
        for number in range(members):
            archive.writestr(f"customXml/item{number}.bin", b"")
    return out.getvalue()


def _flate_pdf(streams: list[bytes]) -> bytes:
    """A PDF with one page per (already deflated) content stream."""
    page_ids = [4 + 2 * i for i in range(len(streams))]
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % len(streams),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for page_id, packed in zip(page_ids, streams, strict=True):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _page_of_spaces(size: int) -> bytes:
    """A page's deflated contents: one line of text after ``size`` bytes of spaces (quick to parse)."""
    return zlib.compress(b" " * size + b"BT /F1 12 Tf 72 720 Td (hello) Tj ET\n", 9)


CASES: dict[str, tuple[str, str, Any, str]] = {
    # name: (file name, media type, builder, fragment of the error)
    "docx-bomb": (
        "bomb.docx", DOCX_MIME, lambda: _docx_with_body(_paragraphs(100 * MIB)),
        "member 'word/document.xml' unpacks to 100 MiB, more than the 64 MiB allowed",
    ),
    "docx-ratio": (
        "ratio.docx", DOCX_MIME, lambda: _docx_with_body(_paragraphs(60 * MIB)),
        ":1 (at most 200:1 is allowed",
    ),
    "docx-lying-sizes": ("lying.docx", DOCX_MIME, _lying_docx, "is not a readable Word (.docx) document"),
    "docx-entities": ("entities.docx", DOCX_MIME, _entity_docx, "declares a DOCTYPE (XML entities are refused)"),
    "docx-crowded": ("crowded.docx", DOCX_MIME, lambda: _crowded_docx(20_000), "lists 20,0"),
    "zip-sniffed-crowded": ("blob", "application/octet-stream", lambda: _crowded_docx(20_000), "lists 20,0"),
    "pdf-stream-bomb": (
        "bomb.pdf", "application/pdf", lambda: _flate_pdf([zlib.compress(b" " * (100 * MIB), 9)]),
        "a stream that unpacks past the 16 MiB",
    ),
    "pdf-many-streams": (
        "pages.pdf", "application/pdf", lambda: _flate_pdf([_page_of_spaces(12 * MIB)] * 7),
        "more than 64 MiB of content",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case read at once, each by its own capped process."""
    directory = tmp_path_factory.mktemp("documents")
    running = {}
    for case, (name, mime, build, _) in CASES.items():
        path = directory / case
        path.write_bytes(build())
        running[case] = subprocess.Popen(
            [sys.executable, "-m", "tests.security.document_probe", str(path), name, mime, str(MEMORY_CEILING)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for case, process in running.items():
        stdout, stderr = process.communicate(timeout=900)  # stops a hang only
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        results[case] = (
            json.loads(lines[-1]) if lines else {"outcome": f"exit {process.returncode}", "message": stderr[-2000:]}
        )
        results[case]["size"] = (directory / case).stat().st_size
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_compressed_documents_are_refused_naming_the_cap(reports: dict[str, dict[str, Any]], case: str) -> None:
    report = reports[case]
    name, _, _, fragment = CASES[case]
    assert report["outcome"] == "NodeConfigError", report
    assert report["message"].startswith(f"file '{name}' "), report
    assert fragment in report["message"], report
    assert report["max_rss_mib"] < RSS_BOUND_MIB, report
