"""Which process owns something (a run, a budget reservation), and whether that process still lives.

An owner is recorded as pid, the pid's start time (Linux `/proc/<pid>/stat` field 22, clock ticks
since boot) and the host name, so a pid that the kernel has since given to another process does
not count as the owner. A leaf module: the ledger and the pipeline both use it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def process_started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when it cannot be read."""
    stat = _stat(pid)
    return None if stat is None else stat[19]  # field 22, counted after the command name


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def process_owner() -> dict[str, Any]:
    """The pid, its start time and the host of this process, as recorded on runs and reservations."""
    return {"pid": os.getpid(), "pid_started": process_started(os.getpid()), "host": socket.gethostname()}


def owner_alive(row: Mapping[str, Any]) -> bool | None:
    """Is the process recorded in `row` (pid, pid_started, host) still alive?

    None when it cannot be told (another host). A row that records no owner was written by a tvdb
    older than owner tracking, which only ever left such a row open when its process died: it has no
    live owner (False). A zombie (killed, not yet reaped by its parent) is dead: it will never finish
    what it started.
    """
    if not row.get("pid") or not row.get("host"):
        return False
    if row.get("host") != socket.gethostname():
        return None
    pid = int(row["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    stat = _stat(pid)
    if stat is not None and stat[0] in ("Z", "X"):
        return False
    recorded = row.get("pid_started")
    if recorded and stat is not None and stat[19] != recorded:
        return False  # the pid now belongs to another process
    return True
