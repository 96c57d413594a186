"""File names and media types that are safe wherever a stored file's reference goes.

A stored file's name and media type travel far from the node that chose them: into HTTP
headers and multipart bodies (``gdrive.upload`` puts the media type in a part header, so
``text/plain\\r\\nX-Injected: 1`` would add a header), into Slack messages and file lists, into
``Content-Disposition`` when a file is downloaded, and into paths when a file is written out.
So a name is one file name, not a path: no control characters (C0 with tab and newline, DEL,
C1), no line or paragraph separators, no bidirectional controls (``invoice\\u202efdp.exe``
displays as ``invoiceexe.pdf``), no ``/`` or ``\\``, not ``.`` or ``..``; and a media type is a
``type/subtype`` token with optional ``; name=value`` parameters. The file store refuses
anything else (:class:`storage.files.FileStore`), and the file nodes check their params with
the same functions so the error names the field before anything runs.
"""

from __future__ import annotations

import re

#: Longest file name (characters), the width of the files table's column.
MAX_NAME_CHARS = 255
#: Longest media type (characters), the width of the files table's column.
MAX_MIME_CHARS = 100

_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf'{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"[^"\\\x00-\x1f\x7f]*"))*')


def _shown(text: str) -> str:
    shown = repr(text)  # escapes control characters: safe to print anywhere
    return shown if len(shown) <= 60 else shown[:59] + "…"


def name_problem(name: str) -> str | None:
    """What makes ``name`` unsafe as a stored file's name, or None."""
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name):,} characters long; at most {MAX_NAME_CHARS}"
    if bad := _FORBIDDEN_CHARS.search(name):
        return (
            f"{_shown(name)} has the control character U+{ord(bad.group()):04X} at position {bad.start() + 1}; "
            "a file name is one line of visible text"
        )
    if "/" in name or "\\" in name:
        return f"{_shown(name)} has a path separator; give a file name, not a path"
    if name.strip() in (".", ".."):
        return f"{_shown(name)} is not a file name"
    return None


def mime_problem(mime: str) -> str | None:
    """What makes ``mime`` unsafe as a stored file's media type, or None."""
    if len(mime) > MAX_MIME_CHARS:
        return f"is {len(mime):,} characters long; at most {MAX_MIME_CHARS}"
    if not _MEDIA_TYPE.fullmatch(mime):
        return f"{_shown(mime)} is not a media type (type/subtype, e.g. text/plain or text/csv; charset=utf-8)"
    return None


def checked_name(name: str) -> str:
    """``name`` if it is a safe file name; raises ValueError saying what is wrong (pydantic validators)."""
    problem = name_problem(name)
    if problem:
        raise ValueError(f"the file name {problem}")
    return name


def checked_mime(mime: str | None) -> str | None:
    """``mime`` if it is None or a media type; raises ValueError saying what is wrong."""
    problem = mime_problem(mime) if mime is not None else None
    if problem:
        raise ValueError(f"the media type {problem}")
    return mime
