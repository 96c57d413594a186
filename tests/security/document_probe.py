"""Run ``document.to_text`` on one file under a memory ceiling; print the outcome as JSON.

``python -m tests.security.document_probe FILE NAME MIME MEMORY_BYTES``. The address space is
capped (RLIMIT_AS) before anything is read, so a document that unpacks to gigabytes ends here
in a MemoryError instead of swapping the machine. The store is an in-memory files backend (the
node only calls ``load``); the report holds the NodeConfigError's message or the output's size,
and the peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path
from typing import Any

from tests.helpers.processes import peak_rss_kib


class _OneFile:
    """A files backend holding one file (what ``FileStore.load`` returns)."""

    def __init__(self, ref: dict[str, Any], content: bytes) -> None:
        self.ref, self.content = ref, content

    async def save(self, content: bytes, *, name: str, mime: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def load(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        return self.ref, self.content


def main() -> None:
    path, name, mime, limit = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    import nodes.document  # noqa: F401 - registers document.to_text
    from nodes.errors import NodeConfigError
    from tests.nodes.context import call_node, make_context

    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    content = path.read_bytes()
    ctx = make_context()
    ctx.files_backend = _OneFile({"file_id": "f1", "name": name, "mime": mime, "size": len(content)}, content)
    report: dict[str, Any] = {}
    try:
        out = asyncio.run(call_node("document.to_text", {"file": {**ctx.files_backend.ref}}, ctx))
        report.update(outcome="text", chars=out["chars"], format=out["format"])
    except NodeConfigError as exc:
        report.update(outcome="NodeConfigError", message=str(exc))
    except BaseException as exc:  # anything else is the finding
        report.update(outcome=type(exc).__name__, message=str(exc)[:500])
    report["max_rss_mib"] = peak_rss_kib() // 1024
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
