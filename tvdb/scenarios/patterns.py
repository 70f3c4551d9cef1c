"""How an expectation names documents: a path or glob relative to the scenario file, an absolute
path, or a bare file name or glob (`*.pdf`); `*` names every document."""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path

_GLOB_CHARS = "*?["


def matches(pattern: str, path: str, base: Path) -> bool:
    """Does `pattern` name the document at `path` (absolute, resolved), for a scenario in `base`?"""
    if pattern in ("*", "**"):
        return True
    return fnmatch.fnmatchcase(path, _absolute(pattern, base)) or fnmatch.fnmatchcase(Path(path).name, pattern)


@lru_cache(maxsize=1024)
def _absolute(pattern: str, base: Path) -> str:
    """The pattern as an absolute path resolved like the scenario's documents are (`..` and symlinks
    in its literal leading part), so `../shared/x.pdf` names the document `documents:` resolved from
    the same text. The glob tail is kept as written. Cached: it is asked once per document and entry."""
    full = Path(pattern).expanduser()
    if not full.is_absolute():
        full = base / full
    parts = full.parts
    for i, part in enumerate(parts):
        if any(ch in part for ch in _GLOB_CHARS):
            return str(Path(*parts[:i]).resolve().joinpath(*parts[i:]))
    return str(full.resolve())


def specificity(pattern: str) -> tuple[int, int]:
    """Orders patterns: an exact path beats a glob, a longer pattern beats a shorter one."""
    has_glob = any(ch in pattern for ch in _GLOB_CHARS)
    return (0 if has_glob else 1, len(pattern))
