"""YAML loading with `yaml.safe_load` semantics plus the line of every key, for file:line errors."""

from __future__ import annotations

import re
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


# Aliases let a few hundred bytes of YAML expand into billions of values ("billion laughs"); a
# scenario or config never needs more than this many values once aliases are expanded.
MAX_EXPANDED_NODES = 100_000
MAX_FILE_BYTES = 10 * 1024 * 1024  # a scenario or config file; anything bigger is a mistake
# PyYAML composes (and we walk) nested collections recursively, so a few hundred `[` would end in a
# RecursionError; no scenario or config needs more than a handful of levels.
MAX_DEPTH = 64


class _DepthLimitedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses collections nested deeper than MAX_DEPTH, at the offending line."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self._depth >= MAX_DEPTH:
            raise yaml.MarkedYAMLError(None, None, f"nested more than {MAX_DEPTH} levels deep; refusing "
                                       "(flatten the structure)", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> None:
    """Refuse recursive aliases and documents whose aliases expand past `limit` values."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[id(node)] > limit:
                raise yaml.MarkedYAMLError(None, None, f"aliases expand to more than {limit:,} "
                                           "values; refusing (a YAML alias bomb?)", node.start_mark)
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise yaml.MarkedYAMLError(None, None, "a recursive alias (a node that contains itself)",
                                       node.start_mark)
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


_EventLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def check_structure(text: str) -> None:
    """Refuse a hostile document before anything in it is constructed: collections nested deeper
    than MAX_DEPTH, recursive aliases, and aliases that expand to more than MAX_EXPANDED_NODES values
    (or 10× the document's own values, when that is more: a large file with honest aliases, as a
    dumper writes for repeated objects). One streaming pass over libyaml's parse events; only a
    document that uses aliases is composed to count their expansion. Raises yaml.YAMLError (with
    its mark) for these and for a syntax error."""
    depth = values = 0
    aliases = False
    for event in yaml.parse(text, Loader=_EventLoader):
        if isinstance(event, _OPENS):
            depth += 1
            values += 1
            if depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(None, None, f"nested more than {MAX_DEPTH} levels deep; refusing "
                                           "(flatten the structure)", event.start_mark)  # type: ignore[arg-type]
        elif isinstance(event, _CLOSES):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
        elif isinstance(event, yaml.AliasEvent):
            aliases = True
    if not aliases:
        return
    loader = _DepthLimitedLoader(text)  # depth is known to be small: composing cannot recurse deeply
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_aliases(node, max(MAX_EXPANDED_NODES, 10 * values))
    finally:
        loader.dispose()


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


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _with_line(exc: yaml.reader.ReaderError, source: str, path: Path) -> yaml.MarkedYAMLError:
    """PyYAML's refusal of a character YAML does not allow (NUL, most control characters), marked at its
    line and column like every other syntax error."""
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    # YAML's line breaks (CR alone too), so the line is the one every other YAML error names
    before = _LINE_BREAK.split(source[:exc.position])
    line, column = len(before) - 1, len(before[-1])
    mark = yaml.Mark(str(path), exc.position, line, column, None, 0)  # no buffer: no snippet under the message
    return yaml.MarkedYAMLError(problem=f"the control character #x{code:04X} is not allowed in YAML: remove it",
                                problem_mark=mark)


def load_yaml(path: Path, *, text: str | None = None) -> YamlDocument:
    """Parse `path` safely; raises yaml.YAMLError (with its own mark) on a syntax error, a duplicate key,
    nesting deeper than MAX_DEPTH or an alias bomb; OSError (tvdb.files.NotARegularFile, FileTooLarge)
    for a path that is not a small regular file; UnicodeDecodeError for a file that is not UTF-8."""
    from tvdb.files import read_regular_file

    source = read_regular_file(path, MAX_FILE_BYTES).decode("utf-8") if text is None else text
    try:
        loader = _DepthLimitedLoader(source)
    except yaml.reader.ReaderError as exc:  # it names a character position only: give its line too
        raise _with_line(exc, source, path) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(path, None, {})
        _check_aliases(node)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    _walk(node, (), lines)
    return YamlDocument(path, data, lines)
