"""Google Drive file nodes: list a folder or a search, download (exporting Google files), upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.files import FileRef
from nodes.gdrive import transport
from nodes.params import Params
from nodes.registry import node

ExportFormat = Literal["text", "pdf", "csv"]

#: Each export format's media type and file extension.
FORMATS: dict[str, tuple[str, str]] = {
    "text": ("text/plain", "txt"),
    "pdf": ("application/pdf", "pdf"),
    "csv": ("text/csv", "csv"),
}


@dataclass(frozen=True)
class GoogleType:
    """A Google Workspace file type: what to call it and the formats Drive exports it to."""

    label: str
    formats: tuple[ExportFormat, ...]  # the first one is the default

    @property
    def default(self) -> ExportFormat:
        return self.formats[0]


#: Drive's export table (developers.google.com/drive/api/guides/ref-export-formats), cut to
#: the formats this node offers.
GOOGLE_TYPES: dict[str, GoogleType] = {
    "application/vnd.google-apps.document": GoogleType("Google Docs document", ("text", "pdf")),
    "application/vnd.google-apps.spreadsheet": GoogleType("Google Sheets spreadsheet", ("csv", "pdf")),
    "application/vnd.google-apps.presentation": GoogleType("Google Slides presentation", ("text", "pdf")),
    "application/vnd.google-apps.drawing": GoogleType("Google Drawings drawing", ("pdf",)),
}


def _size(raw: Any) -> int | None:
    """Drive sends ``size`` as a decimal string (int64), and none for folders and shortcuts."""
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


# --- gdrive.list_files ---------------------------------------------------------------------


class ListFilesParams(Params):
    folder: str | None = Field(
        default=None,
        min_length=1,
        description="Id of the folder to list (`root`: My Drive's top level); default: search everywhere.",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        description="A Drive search in Drive's `q` syntax (e.g. `name contains 'report'`), ANDed with the folder.",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Most files to return (1-1000).")
    include_trashed: bool = Field(default=False, description="Also list files in the trash.")


class DriveFile(BaseModel):
    id: str = Field(description="The Drive file id.")
    name: str = Field(description="File name.")
    mime: str = Field(description="Media type (`application/vnd.google-apps.*` for Google files and folders).")
    size: int | None = Field(description="Size in bytes (null for folders and shortcuts).")
    modified_time: str | None = Field(description="Last modification time (RFC 3339).")
    web_url: str | None = Field(description="Link to open the file in Drive.")
    parents: list[str] = Field(default_factory=list, description="Ids of the folders holding the file.")


class ListFilesOutput(BaseModel):
    files: list[DriveFile] = Field(description="The files found, in Drive's order.")
    count: int = Field(description="How many files were returned.")


def _drive_file(raw: dict[str, Any]) -> DriveFile:
    return DriveFile(
        id=raw["id"],
        name=raw.get("name", ""),
        mime=raw.get("mimeType", "application/octet-stream"),
        size=_size(raw.get("size")),
        modified_time=raw.get("modifiedTime"),
        web_url=raw.get("webViewLink"),
        parents=list(raw.get("parents") or []),
    )


def search_query(params: ListFilesParams) -> str | None:
    """The ``q`` string: the folder, the trash filter and the user's query, ANDed."""
    clauses = []
    if params.folder:
        clauses.append(f"{transport.q_string(params.folder)} in parents")
    if not params.include_trashed:
        clauses.append("trashed = false")
    if params.query:
        clauses.append(f"({params.query})")  # its own `or`s stay inside
    return " and ".join(clauses) or None


@node("gdrive.list_files", credential="gdrive")
async def list_files(ctx: NodeContext, params: ListFilesParams) -> ListFilesOutput:
    """List the files in a Drive folder or matching a Drive search (up to `limit`)."""
    found = await transport.list_files(ctx, search_query(params), params.limit)
    files = [_drive_file(raw) for raw in found]
    return ListFilesOutput(files=files, count=len(files))


# --- gdrive.download -----------------------------------------------------------------------


class DownloadParams(Params):
    file_id: str = Field(min_length=1, description="The Drive file id.")
    export_as: ExportFormat | None = Field(
        default=None,
        description=(
            "For Google Docs, Sheets and Slides: the format to export to (`text`, `pdf` or `csv`); "
            "default: text for Docs and Slides, csv for Sheets. Other files are downloaded as they are."
        ),
    )


class DownloadOutput(BaseModel):
    file: FileRef = Field(description="The stored copy of the file.")
    drive_id: str = Field(description="The Drive file id.")
    source_mime: str = Field(description="The file's media type in Drive (a Google type when it was exported).")
    exported_as: ExportFormat | None = Field(description="The export format used, or null for a plain download.")


def _with_extension(name: str, extension: str) -> str:
    return name if name.lower().endswith(f".{extension}") else f"{name}.{extension}"


def _export_format(meta: dict[str, Any], requested: ExportFormat | None, node_id: str) -> ExportFormat | None:
    """The format to export ``meta``'s file to; None for a file downloaded as it is."""
    mime = str(meta.get("mimeType", ""))
    name = meta.get("name", meta.get("id"))
    google = GOOGLE_TYPES.get(mime)
    if google is not None:
        if requested is None:
            return google.default
        if requested not in google.formats:
            raise NodeConfigError(
                f"{name!r} is a {google.label}: it can be exported as {' or '.join(google.formats)}, not {requested}",
                node_id=node_id,
            )
        return requested
    if mime == transport.FOLDER_MIME:
        raise NodeConfigError(f"{name!r} is a folder: list it with gdrive.list_files", node_id=node_id)
    if mime.startswith(transport.GOOGLE_APPS_PREFIX):
        raise NodeConfigError(f"{name!r} ({mime}) has no content Drive can download or export", node_id=node_id)
    if requested is not None and FORMATS[requested][0] != mime:
        raise NodeConfigError(
            f"{name!r} is a {mime} file: only Google Docs, Sheets, Slides and Drawings can be exported; "
            "download it without `export_as`",
            node_id=node_id,
        )
    return None


@node("gdrive.download", credential="gdrive")
async def download(ctx: NodeContext, params: DownloadParams) -> DownloadOutput:
    """Download a Drive file into the file store (Google Docs, Sheets and Slides are exported)."""
    store = ctx.files  # fails before any download when the run has no file store
    meta = await transport.get_file(ctx, params.file_id, fields="id,name,mimeType,size")
    chosen = _export_format(meta, params.export_as, ctx.node_id)
    source_mime = str(meta.get("mimeType") or "application/octet-stream")
    name = str(meta.get("name") or params.file_id)
    if chosen is None:
        content = await transport.download(ctx, params.file_id)
        mime = source_mime
    else:
        mime, extension = FORMATS[chosen]
        content = await transport.export(ctx, params.file_id, mime)
        name = _with_extension(name, extension)
    ref = await store.save(content, name=name, mime=mime)
    return DownloadOutput(
        file=FileRef.model_validate(ref),
        drive_id=str(meta.get("id") or params.file_id),
        source_mime=source_mime,
        exported_as=chosen,
    )


# --- gdrive.upload -------------------------------------------------------------------------


class UploadParams(Params):
    file: FileRef = Field(description="The stored file to upload (a file reference from another node).")
    folder: str | None = Field(
        default=None, min_length=1, description="Id of the Drive folder to put it in (default: My Drive)."
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=255, description="Name in Drive (default: the file's name)."
    )
    mime: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Media type in Drive (default: the file's); a Google type such as "
            "`application/vnd.google-apps.document` makes Drive convert the upload."
        ),
    )


class UploadOutput(BaseModel):
    id: str = Field(description="The new Drive file's id.")
    name: str = Field(description="Its name in Drive.")
    mime: str = Field(description="Its media type in Drive.")
    size: int | None = Field(description="Size in bytes (null for a file converted to a Google type).")
    web_url: str | None = Field(description="Link to open the file in Drive.")


@node("gdrive.upload", credential="gdrive")
async def upload(ctx: NodeContext, params: UploadParams) -> UploadOutput:
    """Upload a stored file to Google Drive (optionally into a folder, under a new name)."""
    try:
        ref, content = await ctx.files.load(params.file.file_id)
    except LookupError as exc:
        raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc
    stored_mime = str(ref.get("mime") or "application/octet-stream")
    metadata: dict[str, Any] = {
        "name": params.name or str(ref.get("name") or params.file.name),
        "mimeType": params.mime or stored_mime,
    }
    if params.folder:
        metadata["parents"] = [params.folder]
    converting = params.mime is not None and params.mime.startswith(transport.GOOGLE_APPS_PREFIX)
    media_mime = stored_mime if converting or params.mime is None else params.mime
    created = await transport.upload(ctx, metadata, content, media_mime)
    return UploadOutput(
        id=created["id"],
        name=created.get("name", metadata["name"]),
        mime=created.get("mimeType", metadata["mimeType"]),
        size=_size(created.get("size")),
        web_url=created.get("webViewLink"),
    )
