"""How an expectation names documents: a path or glob relative to the scenario file, an absolute
path, or a bare file name or glob (`*.pdf`); `*` names every document."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path


def matches(pattern: str, path: str, base: Path) -> bool:
    """Does `pattern` name the document at `path` (absolute), for a scenario in `base`?"""
    if pattern in ("*", "**"):
        return True
    # normalised like the documents' own paths, so `../shared/x.pdf` names the file it points at
    full = os.path.normpath(pattern if Path(pattern).is_absolute() else str(base / pattern))
    return fnmatch.fnmatchcase(path, full) or fnmatch.fnmatchcase(Path(path).name, pattern)


def specificity(pattern: str) -> tuple[int, int]:
    """Orders patterns: an exact path beats a glob, a longer pattern beats a shorter one."""
    has_glob = any(ch in pattern for ch in "*?[")
    return (0 if has_glob else 1, len(pattern))
