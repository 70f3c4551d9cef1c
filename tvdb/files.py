"""Reading user-named files safely: regular files only, bounded in size, checked on the open file.

The type is checked with `fstat` on the descriptor actually read (opened non-blocking), so a path
swapped for a FIFO or a device between a check and the open can neither hang nor flood memory.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotARegularFile(OSError):
    """The path names a directory, FIFO, socket or device, or is a symlink loop."""


class FileTooLarge(OSError):
    """The file is larger than the limit (or grew past it while being read)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{size:,} bytes is over the {limit:,}-byte limit")


def describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device, not a regular file"


def read_regular_file(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of the regular file `path`.

    Raises FileNotFoundError, NotARegularFile (also for a symlink loop), FileTooLarge, or another OSError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # "too many levels of symbolic links" says less than what it is
            raise NotARegularFile("is a symlink loop") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"is {describe_mode(st.st_mode)}")
        if st.st_size > limit:
            raise FileTooLarge(st.st_size, limit)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLarge(len(data), limit)
    return data
