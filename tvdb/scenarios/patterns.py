"""How an expectation names documents: a path or glob relative to the scenario file, an absolute
path, or a bare file name or glob (`*.pdf`); `*` names every document."""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path

_GLOB_CHARS = "*?["


def matches(pattern: str, path: str, base: Path) -> bool:
    """Does `pattern` name the document at `path` (absolute, its symlinks as the scenario wrote them),
    for a scenario in `base`? As written (`docs/x.pdf` through the link `docs`) or by the real path
    the link leads to, or by file name."""
    if pattern in ("*", "**"):
        return True
    return (fnmatch.fnmatchcase(path, _absolute(pattern, base, resolve=False))
            or fnmatch.fnmatchcase(_real(path), _absolute(pattern, base, resolve=True))
            or fnmatch.fnmatchcase(Path(path).name, pattern))


@lru_cache(maxsize=1024)
def _real(path: str) -> str:
    return str(Path(path).resolve())


@lru_cache(maxsize=1024)
def _absolute(pattern: str, base: Path, *, resolve: bool) -> str:
    """The pattern as an absolute path, its literal leading part folded (`..`) like the scenario's
    documents are, or also resolved (symlinks), so `../shared/x.pdf` names the document `documents:`
    gave from the same text. The glob tail is kept as written. Cached: asked once per document and entry."""
    import os

    full = Path(pattern).expanduser()
    if not full.is_absolute():
        full = base / full

    def fold(p: Path) -> Path:
        return p.resolve() if resolve else Path(os.path.abspath(p))

    parts = full.parts
    for i, part in enumerate(parts):
        if any(ch in part for ch in _GLOB_CHARS):
            return str(fold(Path(*parts[:i])).joinpath(*parts[i:]))
    return str(fold(full))


def as_named(path: str, base: Path) -> str:
    """The document as the scenario names it: relative to the scenario's folder (`../shared/x.pdf` too),
    the form of the expectations, the run's table and `--json`'s `path`."""
    import os

    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        relative = os.path.relpath(path, base)
        return relative if relative.count("..") <= 3 else path  # far away: the absolute path reads better


def specificity(pattern: str) -> tuple[int, int]:
    """Orders patterns: an exact path beats a glob, a longer pattern beats a shorter one."""
    has_glob = any(ch in pattern for ch in _GLOB_CHARS)
    return (0 if has_glob else 1, len(pattern))
