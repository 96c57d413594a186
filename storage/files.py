"""Files: bytes in a content-addressed blob store, metadata rows in the database.

Nodes pass file references (``{file_id, name, mime, size}``), never bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from nodes.file_names import mime_problem, name_problem
from storage.db import sessionmaker
from storage.models import FileRow

#: Largest file the store accepts (bytes).
MAX_FILE_BYTES = 100 * 1024 * 1024


class FileStoreError(LookupError):
    """A file is missing, too large, has an unsafe name or media type, or its bytes do not match
    its record."""


def file_ref(row: FileRow) -> dict[str, Any]:
    return {"file_id": row.id, "name": row.name, "mime": row.mime, "size": row.size}


class FileStore:
    """Blobs under ``root/<sha256[:2]>/<sha256>``; identical content is stored once."""

    def __init__(self, engine: AsyncEngine, root: Path) -> None:
        self.engine = engine
        self.root = root
        self.sessions = sessionmaker(engine)

    def _blob(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _write_blob(self, digest: str, content: bytes) -> None:
        path = self._blob(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, path)  # atomic: readers never see half a blob
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def save(self, content: bytes, *, name: str, mime: str | None = None) -> dict[str, Any]:
        """Store bytes; returns the file reference.

        Every writer comes through here, so this is where a name or media type that would be
        unsafe downstream (headers, Slack, paths: see :mod:`nodes.file_names`) is refused.
        """
        if problem := name_problem(name):
            raise FileStoreError(f"the file name {problem}")
        if mime is not None and (problem := mime_problem(mime)):
            raise FileStoreError(f"the media type {problem}")
        if len(content) > MAX_FILE_BYTES:
            raise FileStoreError(f"{name!r} is {len(content)} bytes; the limit is {MAX_FILE_BYTES}")
        digest = hashlib.sha256(content).hexdigest()
        await asyncio.to_thread(self._write_blob, digest, content)
        row = FileRow(
            id=uuid.uuid4().hex,
            name=name,
            mime=mime or mimetypes.guess_type(name)[0] or "application/octet-stream",
            size=len(content),
            sha256=digest,
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
        return file_ref(row)

    async def load(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        """The reference and the bytes of a stored file."""
        async with self.sessions() as session:
            row = await session.get(FileRow, file_id)
        if row is None:
            raise FileStoreError(f"no file with id {file_id!r}")
        try:
            content = await asyncio.to_thread(self._blob(row.sha256).read_bytes)
        except FileNotFoundError:
            raise FileStoreError(
                f"the bytes of file {file_id!r} ({row.name}) are missing from the blob store"
            ) from None
        if hashlib.sha256(content).hexdigest() != row.sha256:
            raise FileStoreError(f"file {file_id!r} ({row.name}) is corrupted in the blob store")
        return file_ref(row), content
