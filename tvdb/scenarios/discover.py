"""Which YAML files are scenarios: the one rule `tvdb replay --all` and the pytest plugin share.

A scenario file is a `.yaml`/`.yml` file whose top level is a mapping with both `name` and
`documents` (the two keys every scenario must have, tvdb/scenarios/schema.py). Cassettes (top-level
`interactions`), configs and other YAML are not scenarios. A file that is not valid YAML is a
scenario only when it has `name:` and `documents:` lines at column 0: a broken scenario must fail
with its file:line, not silently drop out of CI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

SCENARIO_SUFFIXES = (".yaml", ".yml")
REQUIRED_KEYS = frozenset({"name", "documents"})
# directories that never hold a project's scenarios: VCS, caches, virtualenvs, tvdb's data dir
_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
_LOOKS_LIKE = (re.compile(rb"^name\s*:", re.M), re.compile(rb"^documents\s*:", re.M))
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML has it
_MAX_BYTES = 10 * 1024 * 1024  # as tvdb.yamlfile: nothing bigger loads
_HEAD_BYTES = 1024 * 1024  # of a bigger file, where its `name:` and `documents:` lines are looked for


def _top_level_keys(stream: bytes) -> Iterator[str]:
    """The top-level mapping's scalar keys, read from YAML events (nothing is constructed, aliases
    are not expanded), stopping as soon as the caller has seen enough. Raises yaml.YAMLError."""
    depth = 0
    expecting_key = False
    for event in yaml.parse(stream, Loader=_LOADER):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                return  # a top-level list or scalar document: not a mapping
            depth += 1
            if depth == 1:
                expecting_key = True
                continue
            if depth == 2:
                expecting_key = False  # a collection as a value of a top-level key
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
            if depth == 0:
                return
            if depth == 1:
                expecting_key = True
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and depth == 1:
            if expecting_key and isinstance(event, yaml.ScalarEvent):
                yield event.value
            expecting_key = not expecting_key
        elif isinstance(event, yaml.DocumentEndEvent):
            return  # only the first document counts, as yaml.safe_load would refuse several


def is_scenario_file(path: Path) -> bool:
    """Whether `path` is a scenario file by the rule above. Never raises: an unreadable file is not one."""
    if path.suffix.lower() not in SCENARIO_SUFFIXES or not path.is_file():
        return False
    try:
        if path.stat().st_size > _MAX_BYTES:
            # too big to load, but if it looks like a scenario it is one: its run then fails with the size
            # limit (an error in `replay --all`), instead of the scenario silently dropping out of CI
            with path.open("rb") as f:
                head = f.read(_HEAD_BYTES)
            return all(p.search(head) for p in _LOOKS_LIKE)
        data = path.read_bytes()
    except OSError:
        return False
    seen: set[str] = set()
    try:
        for key in _top_level_keys(data):
            if key == "interactions":
                return False  # a vcrpy cassette: stop before reading its (possibly large) bodies
            seen.add(key)
            if REQUIRED_KEYS <= seen:
                return True
    except (yaml.YAMLError, UnicodeDecodeError):
        return all(p.search(data) for p in _LOOKS_LIKE)
    return False


def _skipped(directory: Path, name: str) -> bool:
    return name.startswith(".") or name in _SKIP_DIRS or (directory / name / "pyvenv.cfg").exists()


def discover_scenarios(root: Path) -> list[Path]:
    """Every scenario file under `root` (or `root` itself when it is one), sorted by path relative
    to `root`. Skips hidden directories (.git, .tvdb, .venv), __pycache__, node_modules and
    virtualenvs. Raises FileNotFoundError when `root` does not exist."""
    if not root.exists():
        raise FileNotFoundError(root)
    if root.is_file():
        return [root] if is_scenario_file(root) else []
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if not _skipped(here, d))
        found.extend(here / f for f in files if is_scenario_file(here / f))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
