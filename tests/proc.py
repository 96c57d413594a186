"""Reading the process table (/proc) for tests about child processes."""

from __future__ import annotations

import re
from pathlib import Path


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live, non-zombie process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else (int(fields[1]), fields[19])


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> start time (a reused pid has another)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            parents.setdefault(found[0], []).append(int(entry.name))
            starts[int(entry.name)] = found[1]
    out: dict[int, str] = {}
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            out[child] = starts[child]
            stack.append(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def survivors(noted: dict[int, str]) -> dict[int, str]:
    alive = {}
    for pid, start in noted.items():
        found = _stat(pid)
        if found is not None and found[1] == start:
            alive[pid] = cmdline(pid)
    return alive


def embedded_prefect_port(pid: int) -> int | None:
    """The port of the embedded Prefect server among ``pid``'s descendants, if it has one."""
    for child in descendants(pid):
        line = cmdline(child)
        if "prefect.server.api.server" in line and (found := re.search(r"--port (\d+)", line)):
            return int(found.group(1))
    return None
