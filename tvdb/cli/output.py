"""The one place that decides how output looks: consoles, `--format`/`--json`, tables, untrusted text.

Every command that prints a table builds a `TableData` and hands it to `print_table` (or to
`table_csv`/`table_rows` for `--format csv`/`json`), so all tables behave the same wherever they land:

- identifiers, numbers, words and amounts (`ID`, `NUM`, `WORD`, `MONEY` columns) are never cut,
  wrapped or ellipsised; `PATH` cells are shortened from the left (keeping the file name) only when
  the table cannot fit otherwise; `TEXT` cells wrap at word boundaries, never inside a word;
- on a terminal the table fits the terminal width (`COLUMNS` overrides it); when stdout is not a
  terminal (a CI log, a pipe, `| less`) and `COLUMNS` is unset, nothing is narrowed at all;
- when even the narrowest layout is wider than the terminal, the table is printed wider than the
  terminal rather than cut: a line that wraps in the terminal still contains the whole run id;
- `NO_COLOR` and `TERM=dumb` turn colour off (Rich honours both), `--format plain` drops borders too.

Text that comes from files, scenarios or the database (document paths, scenario names, error
messages) goes through `clean` / `data`: control characters (escape sequences, OSC titles, bidi
overrides) are shown as `\\x1b`-style escapes, and such text is never read as Rich markup or emoji.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text


class Format(StrEnum):
    TABLE = "table"
    PLAIN = "plain"
    JSON = "json"
    CSV = "csv"


FormatOption = Annotated[
    Format | None,
    typer.Option("--format", help="table (default), plain (no borders or colour), json (one object) or csv."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (same as --format json).")]


def pick_format(fmt: Format | None, as_json: bool) -> Format:
    """`--json` is an alias of `--format json`; asking for both json and another format is a usage error."""
    if as_json and fmt not in (None, Format.JSON):
        raise typer.BadParameter(f"--json conflicts with --format {fmt}", param_hint="'--json'")
    return Format.JSON if as_json else (fmt or Format.TABLE)


# -- untrusted text -------------------------------------------------------------------------------

def clean(value: object) -> str:
    """`str(value)` with control and format characters escaped (`\\x1b`, `\\u202e`), tab and all."""
    text = str(value)
    if text.isprintable():
        return text
    import unicodedata  # only for text that needs escaping

    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) in ("Zs",):
            out.append(" ")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def clean_lines(value: object) -> str:
    """Like `clean`, but a message's own line breaks stay line breaks (a scenario error lists one problem a line)."""
    return "\n".join(clean(line) for line in str(value).split("\n"))


def data(value: object, style: str = "") -> Text:
    """Untrusted text as a Rich `Text`: escaped by `clean`, never parsed as markup or emoji."""
    return Text(clean(value), style=style)


def data_lines(value: object, style: str = "", indent: str = "    ") -> Text:
    """A multi-line message (a cassette miss names the request, the diff and the fix on their own
    lines) as a Rich `Text`: each line escaped by `clean`, lines after the first indented under it,
    so the newlines read as lines, not as `\\x0a`. Every other control character stays escaped."""
    lines = str(value).replace("\r\n", "\n").split("\n")
    out = Text(clean(lines[0]), style=style)
    for line in lines[1:]:
        out.append("\n" + indent + clean(line), style=style)
    return out


# -- consoles -------------------------------------------------------------------------------------

def make_console(*, stderr: bool = False, markup: bool = True) -> Console:
    """A console for tvdb's output: no highlighting, no emoji codes; Rich honours COLUMNS, NO_COLOR, TERM=dumb.

    In a pipe or CI log (no terminal, no COLUMNS) lines are not wrapped at all: a log viewer wraps them."""
    console = Console(stderr=stderr, highlight=False, emoji=False, markup=markup)
    if unbounded(console):
        console.soft_wrap = True
    return console


def stdout_json(obj: Any) -> None:
    """The one JSON object a command prints on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def unbounded(console: Console) -> bool:
    """True when nothing should be narrowed: not a terminal and no COLUMNS (a CI log, a pipe)."""
    return not console.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit()


# -- tables ---------------------------------------------------------------------------------------

class Kind(StrEnum):
    ID = "id"        # run ids, model names, dates: never cut
    MONEY = "money"  # dollar figures: never cut
    NUM = "num"      # counts: never cut, right-aligned
    WORD = "word"    # statuses and other single words: never cut or wrapped
    PATH = "path"    # shortened from the left, file name kept, only when too narrow
    TEXT = "text"    # wraps at word boundaries


_FIXED = {Kind.ID, Kind.MONEY, Kind.NUM, Kind.WORD}
Cell = str | Text | None


@dataclass(frozen=True)
class Col:
    """One column: its header, what kind of value it holds, and its key in JSON/CSV (default: header)."""

    header: str
    kind: Kind = Kind.TEXT
    key: str | None = None
    footer: Cell = None

    @property
    def field(self) -> str:
        return self.key or self.header.replace(" ", "_")


@dataclass(frozen=True)
class TableData:
    """A table independent of how it is shown: rows of cells (plain `str` is untrusted data)."""

    columns: Sequence[Col]
    rows: Sequence[Sequence[Cell]]
    title: str | None = None
    values: Sequence[Sequence[Any]] | None = field(default=None)  # raw values for json/csv (default: cell text)


def _text(cell: Cell) -> Text:
    if cell is None:
        return Text("")
    return cell if isinstance(cell, Text) else data(cell)


def shorten_path(path: str, width: int) -> str:
    """`…/dir/file.pdf`: the path cut from the left to `width` cells, never cutting into the file name."""
    if len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    if not sep:
        return path
    room = width - len(name) - 2  # "…" and the "/" before the name
    if room <= 0:
        return "…/" + name
    tail = head[len(head) - room:]
    if "/" in tail:
        tail = tail[tail.index("/"):]  # start at a directory boundary: "…/docs/x.pdf", not "…cs/x.pdf"
    return "…" + tail + "/" + name


def _min_width(kind: Kind, text: str) -> int:
    if kind in _FIXED:
        return max((len(line) for line in text.splitlines()), default=0)
    if kind is Kind.PATH:
        name = text.rpartition("/")[2]
        return min(len(text), len(name) + 2)
    return max((len(w) for w in text.split()), default=0)


def _widths(columns: Sequence[Col], cells: list[list[Text]], avail: int | None) -> list[int]:
    """Natural widths, narrowed to `avail` (widest text column first, then paths) but never below the minimum."""
    nat = [max((c.cell_len for c in col), default=0) for col in cells]
    mins = [max((_min_width(spec.kind, c.plain) for c in col), default=0)
            for spec, col in zip(columns, cells, strict=True)]
    widths = list(nat)
    if avail is None:
        return widths
    excess = sum(widths) - avail
    for kind in (Kind.TEXT, Kind.PATH):  # wrap text at spaces first; shorten paths only if that is not enough
        while excess > 0:
            shrinkable = [i for i, spec in enumerate(columns) if spec.kind is kind and widths[i] > mins[i]]
            if not shrinkable:
                break
            widths[max(shrinkable, key=lambda j: widths[j])] -= 1
            excess -= 1
    # still too wide: printed wider than the terminal rather than cut
    return widths


def print_table(console: Console, table: TableData, *, plain: bool = False) -> None:
    """Print `table` so that no identifier or amount is cut (see the module docstring)."""
    from rich import box
    from rich.table import Table  # not at import: `tvdb --help` prints no table

    cols = list(table.columns)
    has_footer = any(c.footer is not None for c in cols)
    cells = [[Text(c.header), *(_text(r[i]) for r in table.rows), *([_text(c.footer)] if has_footer else [])]
             for i, c in enumerate(cols)]
    overhead = 2 * max(len(cols) - 1, 0) if plain else 3 * len(cols) + 1
    avail = None if unbounded(console) else max(console.width - overhead, len(cols))
    widths = _widths(cols, cells, avail)
    rich = Table(
        title=Text(table.title) if table.title else None, title_justify="left", show_footer=has_footer,
        box=None if plain else box.HEAVY_HEAD, show_edge=not plain, pad_edge=not plain,
        header_style="" if plain else "bold", footer_style="" if plain else "bold", title_style="",
    )
    for spec, width in zip(cols, widths, strict=True):
        rich.add_column(Text(spec.header), footer=_text(spec.footer) if has_footer else "",
                        justify="right" if spec.kind in (Kind.NUM, Kind.MONEY) else "left",
                        no_wrap=spec.kind in _FIXED or spec.kind is Kind.PATH, overflow="fold", width=width)
    for row in table.rows:
        out = []
        for spec, width, cell in zip(cols, widths, row, strict=True):
            text = Text(_text(cell).plain) if plain else _text(cell)
            if spec.kind is Kind.PATH and text.cell_len > width:
                text = Text(shorten_path(text.plain, width), style=text.style)
            out.append(text)
        rich.add_row(*out)
    needed = sum(widths) + overhead
    saved = console.width
    console.width = max(saved, needed) if avail is not None else max(needed, 1)
    try:
        console.print(rich, crop=False)
    finally:
        console.width = saved


def table_rows(table: TableData) -> list[dict[str, Any]]:
    """The table as JSON-ready dicts keyed by each column's `field` (raw values when given)."""
    if table.values is not None:
        return [dict(zip([c.field for c in table.columns], row, strict=True)) for row in table.values]
    return [{c.field: None if cell is None else _text(cell).plain for c, cell in zip(table.columns, row, strict=True)}
            for row in table.rows]


def table_csv(table: TableData) -> str:
    """The table as CSV: a header of fields, then one line per row (raw values when given)."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.field for c in table.columns])
    for row in table_rows(table):
        writer.writerow(["" if v is None else v for v in row.values()])
    return buf.getvalue()


def emit_table(console: Console, table: TableData, fmt: Format, *, json_obj: Any = None) -> None:
    """Show `table` in `fmt`; for json, `json_obj` (the command's documented object) or the rows."""
    if fmt is Format.JSON:
        stdout_json(json_obj if json_obj is not None else table_rows(table))
    elif fmt is Format.CSV:
        sys.stdout.write(table_csv(table))
    else:
        print_table(console, table, plain=fmt is Format.PLAIN)
