"""Build real sample documents for the document and file-transform tests.

The PDF is written by hand (objects, content streams, a byte-exact cross-reference table), so
the tests depend on nothing but the PDF format; the DOCX is built with python-docx.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from docx import Document
from pypdf import PdfReader, PdfWriter


def _pdf_string(text: str) -> bytes:
    """A PDF literal string (WinAnsi for Helvetica), with ``\\``, ``(`` and ``)`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def minimal_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF 1.4 with one page per item, each drawn by one Helvetica text object.

    Lines of a page's text (split on ``\\n``) are drawn one under the other with ``T*``.
    """
    # Object numbers: 1 catalog, 2 page tree, 3 font, then (page, contents) pairs.
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % pid for pid in page_ids) + b"] /Count %d >>" % len(pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page_id, text in zip(page_ids, pages, strict=True):
        lines = text.split("\n")
        ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"72 720 Td", _pdf_string(lines[0]) + b" Tj"]
        ops += [_pdf_string(line) + b" '" for line in lines[1:]]  # ' = T* then Tj
        ops.append(b"ET")
        stream = b"\n".join(ops) + b"\n"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset  # each entry is exactly 20 bytes
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def encrypted_pdf(pages: Sequence[str], *, user_password: str, owner_password: str = "owner") -> bytes:
    """:func:`minimal_pdf` encrypted by pypdf (an empty ``user_password`` opens without one)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(minimal_pdf(pages))))
    writer.encrypt(user_password, owner_password, algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def sample_docx() -> bytes:
    """A DOCX with a heading, paragraphs, and a table between them (order matters)."""
    document = Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=3, cols=2)
    for row, (region, amount) in zip(
        table.rows, [("Region", "Amount"), ("North", "1,200"), ("South", "950")], strict=True
    ):
        row.cells[0].text = region
        row.cells[1].text = amount
    document.add_paragraph("Next steps: hire & expand.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


SAMPLE_HTML = """<!DOCTYPE html>
<html>
<head>
  <title>Head title must not appear</title>
  <style>body { color: red; } .hidden { display: none }</style>
  <script>var secret = "script text must not appear";</script>
</head>
<body>
  <h1>Release   notes</h1>
  <p>Fish &amp; chips &lt;3 caf&eacute; &#8212; fast.</p>
  <ul><li>First item</li><li>Second
      item</li></ul>
  <div>Line one<br>Line two</div>
  <script type="module">console.log("also dropped")</script>
  <p>Done.</p>
</body>
</html>
"""
