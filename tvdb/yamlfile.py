"""YAML loading with `yaml.safe_load` semantics plus the line of every key, for file:line errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: `data` as `yaml.safe_load` gives it, and the 1-based line of each path."""

    path: Path
    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of the deepest known prefix of `loc` (a pydantic error location)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping states the same key twice; YAML would silently keep the last one."""


def _walk(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in seen and key != "<<":
                raise DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
            out[(*loc, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*loc, key), out)
            # the key's own line is more useful than the value's for "unknown key" errors
            out[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), out)


def load_yaml(path: Path, *, text: str | None = None) -> YamlDocument:
    """Parse `path` safely; raises yaml.YAMLError (with its own mark) on a syntax error or a duplicate key."""
    source = path.read_text("utf-8") if text is None else text
    loader = yaml.SafeLoader(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(path, None, {})
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    _walk(node, (), lines)
    return YamlDocument(path, data, lines)
