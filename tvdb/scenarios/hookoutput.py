"""While the user's hooks run, what they print goes to stderr, redacted, so that stdout carries only
tvdb's own output (`tvdb run --json` is one JSON object on stdout, whatever the user's code prints).

Python-level writes (`print`, `sys.stdout.write`, a logging handler on `sys.stdout`) are redacted a line
at a time (tvdb.redaction: the configured secrets, anything key-shaped) and written to `sys.stderr`.
Writes straight to file descriptor 1 (a subprocess the hook starts, a C extension) are sent to
descriptor 2 as they are: tvdb cannot read them to redact them, but they no longer corrupt stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from tvdb.redaction import redact


class RedactingLines:
    """A text stream that writes each complete line to `target` redacted of `secrets`; a key printed
    in pieces (`write("sk-…")`, `write("\\n")`) is redacted whole. `drain()` writes the unfinished line."""

    def __init__(self, target: TextIO, secrets: Sequence[str]) -> None:
        self.target = target
        self.secrets = list(secrets)
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            done, _, self._pending = self._pending.rpartition("\n")
            self.target.write(redact(done + "\n", self.secrets))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:  # a line is written when it ends; flushing a half line could split a key
        self.target.flush()

    def drain(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self.target.write(redact(pending, self.secrets) + "\n")
        self.target.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno…: the target's
        return getattr(self.target, name)


@contextmanager
def hook_stdout_to_stderr(secrets: Sequence[str]) -> Iterator[None]:
    """While the block runs, `sys.stdout` is a RedactingLines over `sys.stderr`, and file descriptor 1
    (when there is one) points at descriptor 2; both are put back afterwards."""
    saved, stream = sys.stdout, RedactingLines(sys.stderr, secrets)
    saved_fd = _point_fd1_at_fd2(saved)
    sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout = saved
        stream.drain()
        if saved_fd is not None:
            try:
                os.dup2(saved_fd, 1)
            finally:
                os.close(saved_fd)


def _point_fd1_at_fd2(stdout: TextIO) -> int | None:
    """A copy of descriptor 1 after pointing it at descriptor 2, or None when the process has no such
    descriptors (an embedded interpreter, a closed stdout)."""
    try:
        stdout.flush()  # what tvdb wrote before the hooks ran stays on stdout
        saved = os.dup(1)
    except (OSError, ValueError):
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved
