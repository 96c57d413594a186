"""Zip archives from untrusted files (Word documents are zips), checked before anything unpacks them.

A 1.5 MB zip can declare, or hide, gigabytes: one member of repeated bytes deflates about
1000:1, a central directory can list a million members, and the sizes it declares can lie.
:func:`check_zip` refuses such an archive with :class:`ArchiveError` before a parser
(python-docx, lxml) reads it:

* the member count is read from the end-of-central-directory record, before ``zipfile``
  builds one object per member;
* the declared sizes (each member, the total) and each member's compression ratio are checked;
* every member is then unpacked once, streaming, counting the bytes actually produced against
  the same caps (``zipfile`` stops at the declared size and a lying member fails its CRC);
* XML members (``.xml``, ``.rels``) must be UTF-8 and carry no ``<!DOCTYPE`` or ``<!ENTITY``:
  an Office document never has one, and entity declarations are how XML expands itself.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from io import BytesIO

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CHUNK = 1024 * 1024
_XML_SUFFIXES = (".xml", ".rels")
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")
_OVERLAP = max(len(marker) for marker in _FORBIDDEN) - 1


@dataclass(frozen=True)
class ZipLimits:
    """How much an archive may unpack to."""

    #: All members together, unpacked (declared and actual).
    max_total_bytes: int = 256 * 1024 * 1024
    #: One XML member, unpacked: lxml's tree takes several times the XML's size in memory.
    max_xml_bytes: int = 64 * 1024 * 1024
    #: Unpacked size / packed size of a member larger than ``ratio_floor_bytes``. Office XML
    #: deflates 5-20:1; a member of repeated bytes about 1000:1.
    max_ratio: int = 200
    ratio_floor_bytes: int = 1024 * 1024
    #: Members listed in the central directory (a Word document has a few dozen).
    max_members: int = 10_000


DEFAULT_LIMITS = ZipLimits()


class ArchiveError(ValueError):
    """The archive unpacks past :class:`ZipLimits` (or is damaged); the message, a sentence
    starting with "the archive" or "the member", says which and where."""


class DamagedArchiveError(ArchiveError):
    """Not a zip archive ``zipfile`` can unpack (truncated, a bad CRC, encrypted, an unknown method)."""


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f} MiB"


def declared_members(content: bytes) -> int | None:
    """The member count the end-of-central-directory record declares (None: no such record)."""
    at = content.rfind(_EOCD, max(0, len(content) - 65_557))  # the record is 22 bytes + a comment
    if at < 0 or at + 22 > len(content):
        return None
    (count,) = struct.unpack_from("<H", content, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and content[locator : locator + 4] == _ZIP64_LOCATOR:
        (record,) = struct.unpack_from("<Q", content, locator + 8)
        if content[record : record + 4] == _ZIP64_EOCD and record + 40 <= len(content):
            (count,) = struct.unpack_from("<Q", content, record + 32)
    return int(count)


def check_zip(content: bytes, limits: ZipLimits = DEFAULT_LIMITS) -> None:
    """Refuse ``content`` unless it is a zip that unpacks within ``limits``; raises :class:`ArchiveError`."""
    count = declared_members(content)
    if count is not None and count > limits.max_members:
        raise ArchiveError(f"the archive lists {count:,} members; at most {limits.max_members:,} are read")
    try:
        with zipfile.ZipFile(BytesIO(content)) as archive:
            members = archive.infolist()
            if len(members) > limits.max_members:
                raise ArchiveError(
                    f"the archive lists {len(members):,} members; at most {limits.max_members:,} are read"
                )
            _check_declared(members, limits)
            total = 0
            for member in members:
                total += _unpack_counting(archive, member, limits, total)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise DamagedArchiveError(f"the archive is damaged or unsupported: {exc}") from exc


def _check_declared(members: list[zipfile.ZipInfo], limits: ZipLimits) -> None:
    total = 0
    for member in members:
        size = member.file_size
        cap = limits.max_xml_bytes if member.filename.lower().endswith(_XML_SUFFIXES) else limits.max_total_bytes
        if size > cap:
            raise ArchiveError(
                f"the member {member.filename!r} unpacks to {_mib(size)}, more than the {_mib(cap)} allowed"
            )
        if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(member.compress_size, 1):
            ratio = size // max(member.compress_size, 1)
            raise ArchiveError(
                f"the member {member.filename!r} is compressed {ratio:,}:1 (at most {limits.max_ratio}:1 is "
                "allowed: a zip bomb?)"
            )
        total += size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"the archive unpacks to more than the {_mib(limits.max_total_bytes)} allowed in all")


def _unpack_counting(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: ZipLimits, before: int) -> int:
    """Unpack one member, discarding the bytes, counting them against the caps; returns its size."""
    is_xml = member.filename.lower().endswith(_XML_SUFFIXES)
    cap = min(member.file_size, limits.max_xml_bytes if is_xml else limits.max_total_bytes)
    size = 0
    tail = b""
    with archive.open(member) as stream:
        while chunk := stream.read(_CHUNK):
            if size == 0 and is_xml and chunk.startswith((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")):
                raise ArchiveError(f"the member {member.filename!r} is XML that is not UTF-8")
            size += len(chunk)
            if size > cap or before + size > limits.max_total_bytes:
                raise ArchiveError(
                    f"the member {member.filename!r} unpacks to more than it declares or is allowed "
                    f"({_mib(size)} so far)"
                )
            if is_xml:
                window = tail + chunk
                for marker in _FORBIDDEN:
                    if marker in window:
                        raise ArchiveError(
                            f"the member {member.filename!r} declares a {marker[2:].decode()} "
                            "(XML entities are refused)"
                        )
                tail = window[-_OVERLAP:]
    return size
