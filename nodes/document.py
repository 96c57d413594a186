"""Documents: the text of a stored PDF, Word (DOCX), HTML, Markdown or plain-text file.

Documents are untrusted and compressed formats can unpack to far more than they weigh: a Word
document is a zip, checked by :mod:`nodes.archives` before python-docx opens it; a PDF's streams
are inflated by pypdf under tighter caps than its defaults (:data:`PDF_LIMITS`), and the page
contents of one document are budgeted in total (:data:`MAX_PDF_CONTENT_BYTES`). The caps are
constants, not settings: they are far above what text extraction needs and bound memory per
node call, which an operator has no reason to raise.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.archives import DEFAULT_LIMITS, ArchiveError, DamagedArchiveError, check_zip, declared_members
from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.files import FileRef, load_file
from nodes.params import Params
from nodes.registry import node

DocumentFormat = Literal["pdf", "docx", "html", "markdown", "text"]

SUPPORTED = "PDF, Word (.docx), HTML, Markdown and plain text"
MAX_CHARS = 5_000_000

#: One PDF stream, inflated (pypdf's default is 75 MB per stream, for any number of streams).
MAX_PDF_STREAM_BYTES = 16 * 1024 * 1024
#: The page contents of one PDF, inflated, in total: the budget that makes a PDF of many small
#: streams that each inflate to the per-stream cap fail too.
MAX_PDF_CONTENT_BYTES = 64 * 1024 * 1024
#: pypdf's configuration for reading untrusted PDFs (``pypdf.apply_configuration``).
PDF_LIMITS: dict[str, Any] = {
    "maximum_declared_stream_length": MAX_PDF_STREAM_BYTES,
    "array_based_stream_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "zlib_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "lzw_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "run_length_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "jbig2_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "brotli_maximum_output_length": MAX_PDF_STREAM_BYTES,
    "image_maximum_buffer_size": MAX_PDF_STREAM_BYTES,
    "stream_decoding_work_maximum_length": 4 * MAX_PDF_STREAM_BYTES,
}

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_MIME_FORMATS: dict[str, DocumentFormat] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    DOCX_MIME: "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/json": "text",
    "application/jsonl": "text",
    "application/x-ndjson": "text",
    "application/xml": "text",
    "application/yaml": "text",
    "application/x-yaml": "text",
}
#: Media types that say nothing about the content: the extension, then the bytes decide.
_VAGUE_MIMES = {
    "",
    "application/octet-stream",
    "binary/octet-stream",
    "application/zip",
    "application/x-zip-compressed",
}
_EXTENSION_FORMATS: dict[str, DocumentFormat] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".csv": "text",
    ".tsv": "text",
    ".json": "text",
    ".jsonl": "text",
    ".yaml": "text",
    ".yml": "text",
}


class DocumentError(ValueError):
    """The file cannot be read as its format (mapped to NodeConfigError)."""


def _sniff(content: bytes) -> DocumentFormat | None:
    """The format from the bytes themselves, or None."""
    if b"%PDF-" in content[:1024]:
        return "pdf"
    if content.startswith(b"PK\x03\x04"):
        members = declared_members(content)
        if members is not None and members > DEFAULT_LIMITS.max_members:
            # zipfile would build one object per listed member just to list the names.
            raise DocumentError(
                f"is refused: the archive lists {members:,} members; at most {DEFAULT_LIMITS.max_members:,} are read"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                return "docx" if "word/document.xml" in archive.namelist() else None
        except zipfile.BadZipFile:
            return None
    if b"\x00" in content[:65536]:
        return None
    try:
        head = content.decode("utf-8-sig").lstrip()
    except UnicodeDecodeError:
        return None
    if head[:15].lower().startswith("<!doctype html") or "<html" in head[:1024].lower():
        return "html"
    return "text"


def detect_format(ref: dict[str, Any], content: bytes) -> DocumentFormat | None:
    """From the media type; a vague one falls back to the extension, then to the bytes.

    Raises :class:`DocumentError` for a zip that lists more members than are ever read.
    """
    mime = str(ref.get("mime") or "").split(";")[0].strip().lower()
    if mime in _MIME_FORMATS:
        return _MIME_FORMATS[mime]
    if mime.startswith("text/"):
        return "text"
    if mime not in _VAGUE_MIMES:
        return None  # e.g. image/png: a type we know we cannot read
    by_extension = _EXTENSION_FORMATS.get(PurePosixPath(str(ref.get("name") or "")).suffix.lower())
    return by_extension or _sniff(content)


def _decode(content: bytes) -> str:
    """Text from bytes: a UTF-16 byte-order mark, else UTF-8, else Windows-1252."""
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return content.decode("utf-16", errors="replace")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def _pdf_text(content: bytes, max_pages: int | None, max_chars: int) -> tuple[str, int, bool]:
    """The text of the first ``max_pages`` pages, the page count, and whether pages were left out."""
    from pypdf import PasswordType, PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError

    # pypdf raises a zoo of exceptions (PdfReadError, KeyError, ValueError, ...) on damaged
    # files; every one of them means "not a readable PDF".
    try:
        with apply_configuration(**PDF_LIMITS):  # a context variable: this thread only
            reader = PdfReader(io.BytesIO(content))
            if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                raise DocumentError("is an encrypted PDF that needs a password; save an unprotected copy and try again")
            total = len(reader.pages)
            limit = min(total, max_pages) if max_pages else total
            parts: list[str] = []
            size = 0
            unpacked = 0
            for index in range(limit):
                if size > max_chars:
                    break  # the text is cut here anyway: spare the remaining pages
                page = reader.pages[index]
                # Inflating the contents first (pypdf keeps the result for extract_text) counts
                # them against the document's budget before any text is parsed from them.
                contents = page.get_contents()
                unpacked += len(contents.get_data()) if contents is not None else 0
                if unpacked > MAX_PDF_CONTENT_BYTES:
                    raise DocumentError(
                        f"is a PDF whose pages up to page {index + 1} unpack to more than "
                        f"{MAX_PDF_CONTENT_BYTES // (1024 * 1024)} MiB of content, the most document.to_text reads "
                        "(read fewer pages with `max_pages`)"
                    )
                part = (page.extract_text() or "").strip()
                parts.append(part)
                size += len(part) + 2
    except DocumentError:
        raise
    except LimitReachedError as exc:
        raise DocumentError(
            f"is a PDF with a stream that unpacks past the {MAX_PDF_STREAM_BYTES // (1024 * 1024)} MiB "
            f"document.to_text allows ({exc})"
        ) from exc
    except Exception as exc:
        raise DocumentError(f"is not a readable PDF: {exc}") from exc
    return "\n\n".join(parts), total, len(parts) < total


def _docx_blocks(container: Any) -> Iterator[str]:
    """Paragraph texts and table rows (cells joined by `` | ``), in document order."""
    from docx.text.paragraph import Paragraph

    for block in container.iter_inner_content():
        if isinstance(block, Paragraph):
            if block.text.strip():
                yield block.text
            continue
        for row in block.rows:
            seen: list[Any] = []
            cells: list[str] = []
            for cell in row.cells:
                if any(cell._tc is tc for tc in seen):
                    continue  # a merged cell is listed once per grid column it spans
                seen.append(cell._tc)
                cells.append(" ".join(_docx_blocks(cell)))
            if any(cells):
                yield " | ".join(cells)


def _docx_text(content: bytes) -> str:
    import docx

    try:
        check_zip(content)  # before python-docx reads every member into memory and lxml parses them
    except DamagedArchiveError as exc:
        raise DocumentError(f"is not a readable Word (.docx) document: {exc}") from exc
    except ArchiveError as exc:
        raise DocumentError(f"is refused as a Word (.docx) document: {exc}") from exc
    try:
        return "\n".join(_docx_blocks(docx.Document(io.BytesIO(content))))
    except Exception as exc:  # zipfile, lxml and python-docx errors alike: a damaged file
        raise DocumentError(f"is not a readable Word (.docx) document: {exc}") from exc


class _HTMLText(HTMLParser):
    """Visible text: script/style/head dropped, block elements on their own lines."""

    SKIP = frozenset({"head", "title", "script", "style", "template", "noscript"})
    BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
            "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
            "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
            "summary", "table", "tbody", "tfoot", "thead", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self.skipping:
            self.skipping.clear()  # an unclosed <head> ends where <body> starts
        if tag in self.SKIP:
            self.skipping.append(tag)
        elif tag in self.BLOCKS or tag == "br":
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.skipping:
            del self.skipping[self.skipping.index(tag) :]
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            # Line breaks in the source are only whitespace; "\n" in parts marks block edges.
            self.parts.append(data.replace("\r", " ").replace("\n", " "))

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self.parts).split("\n"))
        return "\n".join(line for line in lines if line)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, one block element per line, whitespace collapsed."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return parser.text()


def _extract(
    fmt: DocumentFormat, content: bytes, max_pages: int | None, max_chars: int
) -> tuple[str, int | None, bool]:
    """(text, pages, pages left out) for one format; CPU-bound, run in a worker thread."""
    if fmt == "pdf":
        return _pdf_text(content, max_pages, max_chars)
    if fmt == "docx":
        return _docx_text(content), None, False
    text = _decode(content)
    if fmt == "html":
        return html_to_text(text), None, False
    return text, None, False


class ToTextParams(Params):
    file: FileRef = Field(description=f"The stored document: {SUPPORTED}.")
    max_pages: int | None = Field(
        default=None, ge=1, description="PDF only: read at most this many pages from the start (default: all)."
    )
    max_chars: int = Field(
        default=200_000,
        ge=1,
        le=MAX_CHARS,
        description=f"Cut the text after this many characters (default 200,000; at most {MAX_CHARS:,}).",
    )


class ToTextOutput(BaseModel):
    text: str = Field(description="The document's text (Markdown and plain text exactly as stored).")
    chars: int = Field(description="Characters in `text`.")
    truncated: bool = Field(
        description="True when `text` does not cover the whole document (cut at `max_chars`, or PDF pages "
        "left out by `max_pages`)."
    )
    pages: int | None = Field(description="Pages in the PDF (null for other formats).")
    format: DocumentFormat = Field(description="The format read: pdf, docx, html, markdown or text.")


@node("document.to_text")
async def to_text(ctx: NodeContext, params: ToTextParams) -> ToTextOutput:
    """Extract the text of a stored PDF, Word (.docx), HTML, Markdown or plain-text file.

    Compressed documents are refused when they unpack past fixed caps: a Word document's
    members 256 MiB in all, 64 MiB for one XML part, a compression ratio of 200:1, 10,000
    members, no XML entity declarations; a PDF's streams 16 MiB each, its page contents
    64 MiB in all.
    """
    ref, content = await load_file(ctx, params.file.file_id)
    label = f"file '{ref['name']}'"
    try:
        fmt = detect_format(ref, content)
    except DocumentError as exc:
        raise NodeConfigError(f"{label} {exc}", node_id=ctx.node_id) from exc
    if fmt is None:
        raise NodeConfigError(
            f"{label} ({ref['mime']}) is not a document type document.to_text reads; supported: {SUPPORTED}",
            node_id=ctx.node_id,
        )
    try:
        text, pages, left_out = await asyncio.to_thread(_extract, fmt, content, params.max_pages, params.max_chars)
    except DocumentError as exc:
        raise NodeConfigError(f"{label} {exc}", node_id=ctx.node_id) from exc
    cut = len(text) > params.max_chars
    text = text[: params.max_chars]
    return ToTextOutput(text=text, chars=len(text), truncated=cut or left_out, pages=pages, format=fmt)
