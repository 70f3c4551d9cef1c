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
- `NO_COLOR` and `TERM=dumb` turn every style code off (colour, bold, dim), `--format plain` drops borders too.

Text that comes from files, scenarios or the database (document paths, scenario names, error
messages) goes through `clean` / `data`: control characters (escape sequences, OSC titles, bidi
overrides) are shown as `\\x1b`-style escapes, and such text is never read as Rich markup or emoji.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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

def plain_terminal() -> bool:
    """NO_COLOR (set and not empty, https://no-color.org) or TERM=dumb: no style codes at all, not even bold
    or dim (Rich's own `no_color` drops colours only); the live progress display is off under TERM=dumb."""
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM", "").strip().lower() == "dumb"


def make_console(*, stderr: bool = False, markup: bool = True, force_terminal: bool | None = None) -> Console:
    """A console for tvdb's output: no highlighting, no emoji codes; Rich honours COLUMNS, FORCE_COLOR;
    NO_COLOR and TERM=dumb emit no style codes (`plain_terminal`).

    In a pipe or CI log (no terminal, no COLUMNS) lines are not wrapped at all: a log viewer wraps them."""
    width = height = None
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        # Rich sizes a TERM=dumb terminal at 80 columns whatever COLUMNS says; COLUMNS must win
        lines = os.environ.get("LINES", "").strip()
        width, height = int(columns), int(lines) if lines.isdigit() and int(lines) > 0 else 25
    plain = plain_terminal()
    console = Console(stderr=stderr, highlight=False, emoji=False, markup=markup, width=width, height=height,
                      force_terminal=force_terminal, color_system=None if plain else "auto", no_color=plain or None)
    if unbounded(console):
        console.soft_wrap = True
    return console


# secrets this short would mask ordinary words; no real key, token or password is this short
MIN_MASKED_SECRET = 8
# the variables that hold secrets, read before any setting is resolved (a usage error, a bad scenario)
SECRET_ENV_VARS = ("OPENAI_API_KEY", "LLAMA_CLOUD_API_KEY", "LLAMA_CLOUD_WEBHOOK_SECRET", "TVDB_SIGNING_SECRET",
                   "TVDB_ALERTS_SLACK_WEBHOOK_URL", "TVDB_ALERTS_SMTP_PASSWORD")


class MaskingStream:
    """A text stream that writes through to `inner` with every registered secret, and every key-shaped
    string (`sk-…`, `llx-…`: tvdb.redaction), replaced by `***`.

    `tvdb.cli.app.handle_errors` puts one over stdout and one over stderr for the whole command, and
    `settings_for` registers the configured secrets as soon as they are known, so a key pasted into a
    scenario name, a query or a file path never reaches the terminal, a pipe or a CI log, whichever
    code path prints it (tables, JSON, errors, progress). Every other attribute is `inner`'s."""

    def __init__(self, inner: Any, secrets: set[str]) -> None:
        self.inner = inner
        self.secrets = secrets  # shared with the other stream and with settings_for: register once

    def mask(self, text: str) -> str:
        """`text` as this stream writes it."""
        from tvdb.redaction import mask_keys

        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        # and anything key-shaped that is not configured: a key typed as a flag's value or a run id
        # comes back in Click's usage errors and "no run …" messages
        return mask_keys(text)

    def write(self, text: str) -> int:
        return int(self.inner.write(self.mask(text)))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def as_written(text: str) -> str:
    """`text` masked as stdout masks it, for a report written to a file (`--junit`, `--summary-md`,
    `report --html`): those bypass the masking streams, and a summary file is often published
    (`$GITHUB_STEP_SUMMARY`), so a key-shaped scenario name must not reach it either."""
    return _mask_of(sys.stdout)(text)


def _mask_of(stream: Any) -> Callable[[str], str]:
    """What `stream` does to text on its way out: a `MaskingStream` masks the registered secrets and
    key-shaped strings; any other stream gets key-shaped strings masked here (never wrong)."""
    from tvdb.redaction import mask_keys

    return stream.mask if isinstance(stream, MaskingStream) else mask_keys


def register_secrets(secrets: set[str] | None, values: Any) -> None:
    """Add `values` long enough to be masked safely to the masking set (None: nothing to mask into)."""
    if secrets is not None:
        secrets.update(v for v in values if isinstance(v, str) and len(v) >= MIN_MASKED_SECRET)


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


def _masked(cell: Cell, mask: Callable[[str], str]) -> Text:
    """A cell with its secrets already masked. A cell holding none keeps its styled spans; one that
    does keeps its base style only (its spans were laid on the unmasked text)."""
    text = _text(cell)
    shown = mask(text.plain)
    if shown == text.plain:
        return text
    return Text(shown, style=text.style, justify=text.justify, overflow=text.overflow, no_wrap=text.no_wrap)


def _as_printed(console: Console, table: TableData) -> TableData:
    """`table` with every cell masked as the stream will mask it. Masking shortens a cell
    (`sk-proj-…` → `sk-***`), so widths measured before it would leave a column too wide for the
    masked cells and the rows misaligned; measuring the masked text keeps them aligned."""
    mask = _mask_of(console.file)
    columns = [replace(c, footer=_masked(c.footer, mask)) if c.footer is not None else c for c in table.columns]
    rows = [[_masked(cell, mask) for cell in row] for row in table.rows]
    return replace(table, columns=columns, rows=rows)


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
    if "/" not in tail:
        return "…/" + name  # no whole directory fits: "…/x.pdf", not "…cs/x.pdf"
    return "…" + tail[tail.index("/"):] + "/" + name  # start at a directory boundary


_OPEN = "([{'\"<"


def _is_path_word(word: str) -> bool:
    """A word of running text that is a file path (`/tmp/x/cache/9b5a…`, `(docs/a.pdf)`), not a URL."""
    return "/" in word.strip(_OPEN) and "://" not in word


def shorten_path_word(word: str, width: int) -> str:
    """A path inside running text shortened like `shorten_path`, keeping its brackets and punctuation."""
    core = word.lstrip(_OPEN)
    lead = word[: len(word) - len(core)]
    stripped = core.rstrip(")]}'\">,;:.")
    trail = core[len(stripped):]
    return lead + shorten_path(stripped, max(width - len(lead) - len(trail), 1)) + trail


def _path_min(text: str) -> int:
    """The narrowest a path can be: `…/` and its file name (or the whole path when that is shorter)."""
    name = text.rpartition("/")[2]
    return min(len(text), len(name) + 2)


_CLOSE = ")]}'\">,;:."


def _word_min(word: str, short: bool) -> int:
    if short and _is_path_word(word):
        return _path_min(word.strip(_OPEN + _CLOSE)) + len(word) - len(word.strip(_OPEN + _CLOSE))
    return len(word)


def _min_width(kind: Kind, text: str, *, short: bool) -> int:
    """How narrow a cell can get: whole for fixed kinds; a path down to `…/name` when `short`; text
    down to its longest word (its paths shortened too when `short`)."""
    if kind in _FIXED:
        return max((len(line) for line in text.splitlines()), default=0)
    if kind is Kind.PATH:
        return _path_min(text) if short else len(text)
    return max((_word_min(w, short) for w in text.split()), default=0)


def _fit_text(text: Text, width: int) -> Text:
    """A TEXT cell whose path words are wider than `width`, with those paths shortened from the left."""
    words = text.plain.split(" ")
    if all(len(w) <= width or not _is_path_word(w) for w in words):
        return text
    return Text(" ".join(shorten_path_word(w, width) if len(w) > width and _is_path_word(w) else w for w in words),
                style=text.style)


def _widths(columns: Sequence[Col], cells: list[list[Text]], avail: int | None) -> tuple[list[int], bool]:
    """Natural widths narrowed to `avail`: first text wraps at spaces, then (only if that is not
    enough) paths are shortened from the left, widest column first, never below each cell's minimum.
    The flag says whether even the narrowest layout is wider than `avail`."""
    widths = [max((c.cell_len for c in col), default=0) for col in cells]
    if avail is None:
        return widths, False
    excess = sum(widths) - avail
    for short in (False, True):
        mins = [max((_min_width(spec.kind, c.plain, short=short) for c in col), default=0)
                for spec, col in zip(columns, cells, strict=True)]
        while excess > 0:
            shrinkable = [i for i, spec in enumerate(columns)
                          if spec.kind in (Kind.TEXT, Kind.PATH) and widths[i] > mins[i]]
            if not shrinkable:
                break
            widths[max(shrinkable, key=lambda j: widths[j])] -= 1
            excess -= 1
    return widths, excess > 0


class _Stripped:
    """A renderable printed without the trailing spaces Rich pads lines with (titles, plain rows), so a
    pipe or a CI log holds no invisible padding."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: Any) -> Any:
        from rich.segment import Segment

        for line in Segment.split_lines(console.render(self.inner, options)):
            while line and not line[-1].control and not line[-1].text.rstrip():
                line.pop()
            if line and not line[-1].control:
                last = line[-1]
                line[-1] = Segment(last.text.rstrip(), last.style, last.control)
            yield from line
            yield Segment.line()


def print_title(console: Console, title: str | Text) -> None:
    """A section title on its own line, never padded or cut."""
    console.print(title if isinstance(title, Text) else Text(title), crop=False, soft_wrap=True)


def _layout(console: Console, columns: Sequence[Col], cells: list[list[Text]], plain: bool
            ) -> tuple[bool, int, list[int] | None]:
    """(borders, overhead, widths) for `columns`; widths None when no table fits (print records).

    A bordered table costs 3 cells a column; when it cannot fit, the same table without borders may."""
    tries = [False] if plain else [True, False]
    for borders in tries:
        overhead = 3 * len(columns) + 1 if borders else 2 * max(len(columns) - 1, 0)
        avail = None if unbounded(console) else max(console.width - overhead, len(columns))
        widths, too_wide = _widths(columns, cells, avail)
        if not too_wide:
            return borders, overhead, widths
    return False, 0, None


def print_table(console: Console, table: TableData, *, plain: bool = False) -> None:
    """Print `table` so that no identifier or amount is cut (see the module docstring)."""
    from rich import box
    from rich.table import Table  # not at import: `tvdb --help` prints no table

    table = _as_printed(console, table)
    cols = list(table.columns)
    has_footer = any(c.footer is not None for c in cols)
    cells = [[Text(c.header), *(_text(r[i]) for r in table.rows), *([_text(c.footer)] if has_footer else [])]
             for i, c in enumerate(cols)]
    borders, overhead, widths = _layout(console, cols, cells, plain)
    if table.title:
        print_title(console, Text(table.title, style="" if plain else "bold"))
    if widths is None:  # even the narrowest table would wrap in the terminal: one record per row reads better
        _print_records(console, table, plain=plain)
        return
    rich = Table(
        show_footer=has_footer, box=box.HEAVY_HEAD if borders else None, show_edge=borders, pad_edge=borders,
        header_style="" if plain else "bold", footer_style="" if plain else "bold",
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
            elif spec.kind is Kind.TEXT and text.cell_len > width:
                text = _fit_text(text, width)
            out.append(text)
        rich.add_row(*out)
    needed = sum(widths) + overhead
    saved = console.width
    console.width = max(needed, 1) if unbounded(console) else max(saved, needed)
    try:
        console.print(_Stripped(rich), crop=False)
    finally:
        console.width = saved


def _print_records(console: Console, table: TableData, *, plain: bool) -> None:
    """The table as one block per row, for a terminal too narrow for any table layout:

        20261201-101500-3fa2c1
          status: interrupted · docs: 4 · spent: $0.000015
          document: …/deeper/quarterly-report-2026.pdf
          note: stopped by a cancelled CI job after the
                parse stage

    The first cell heads the block (the first two when the first column has no header, e.g. a ✓ mark).
    Ids, words, numbers and amounts follow as `label: value` fields on shared lines, broken only
    between fields; each text or path gets a line of its own, text wrapped at spaces under its label,
    paths shortened from the left to the line. Nothing is cut: a value longer than the line runs past
    the edge. Empty cells are left out; a footer (totals) is the last block."""
    cols = list(table.columns)
    lead = 2 if len(cols) > 1 and not cols[0].header else 1
    rows = list(table.rows)
    if any(c.footer is not None for c in cols):  # the totals row is a block too, last as in the table
        rows.append([c.footer for c in cols])
    for row in rows:
        texts = [Text(_text(c).plain) if plain else _text(c) for c in row]
        print_title(console, Text(" ").join(texts[:lead]))
        fields = [(spec, text) for spec, text in zip(cols[lead:], texts[lead:], strict=True) if text.plain.strip()]
        packed = [Text.assemble(f"{spec.header}: " if spec.header else "", text)
                  for spec, text in fields if spec.kind in _FIXED]
        line = Text("  ")
        for field_text in packed:
            if line.plain.strip() and line.cell_len + 3 + field_text.cell_len > console.width:
                console.print(line, crop=False, soft_wrap=True)
                line = Text("  ")
            line.append_text(Text(" · ") if line.plain.strip() else Text(""))
            line.append_text(field_text)
        if line.plain.strip():
            console.print(line, crop=False, soft_wrap=True)
        for spec, text in fields:
            if spec.kind in _FIXED:
                continue
            label = f"  {spec.header}: " if spec.header else "  "
            room = max(console.width - len(label), 1)
            if spec.kind is Kind.PATH and text.cell_len > room:
                text = Text(shorten_path(text.plain, room), style=text.style)
            elif spec.kind is Kind.TEXT:
                text = _fit_text(text, room)
            print_hanging(console, Text(label), text, indent=len(label))


def wrap_words(text: Text, first: int, rest: int) -> list[Text]:
    """`text` cut into lines at spaces (and at its own line breaks): the first line at most `first`
    cells, the others at most `rest`. A word longer than a line stays whole on a line of its own."""
    out: list[Text] = []
    pos = 0
    for raw in text.plain.split("\n"):
        line_start, line_len, room = pos, 0, first if not out else rest
        i = pos
        for word in raw.split(" "):
            wlen = len(word)
            if line_len and line_len + 1 + wlen > room:  # break before this word
                out.append(text[line_start:i - 1])
                line_start, line_len, room = i, 0, rest
            line_len += (1 if line_len or i > line_start else 0) + wlen
            i += wlen + 1
        out.append(text[line_start:pos + len(raw)])
        pos += len(raw) + 1
    for line in out:
        line.rstrip()
    return out


def print_hanging(console: Console, prefix: Text | str, body: Text, *, indent: int = 4) -> None:
    """`prefix` + `body` on one line; when a terminal is too narrow, the body wraps at spaces and its
    continuation lines are indented by `indent` (so a wrapped expectation stays under its mark).
    Unbounded output (a pipe, a CI log) is never wrapped."""
    head = prefix if isinstance(prefix, Text) else Text(prefix)
    if unbounded(console):
        console.print(Text.assemble(head, body), crop=False, soft_wrap=True)
        return
    lines = wrap_words(body, max(console.width - head.cell_len, 1), max(console.width - indent, 1))
    out = Text.assemble(head, lines[0])
    for line in lines[1:]:
        out.append("\n" + " " * indent)
        out.append_text(line)
    console.print(out, crop=False, soft_wrap=True)


def table_rows(table: TableData) -> list[dict[str, Any]]:
    """The table as JSON-ready dicts keyed by each column's `field` (raw values when given)."""
    if table.values is not None:
        return [dict(zip([c.field for c in table.columns], row, strict=True)) for row in table.values]
    return [{c.field: None if cell is None else _text(cell).plain for c, cell in zip(table.columns, row, strict=True)}
            for row in table.rows]


def csv_cell(value: Any) -> Any:
    """A CSV cell: None empty, a float in plain decimal (`0.00001516`, never `1.516e-05`: spreadsheets
    and awk read the exponent as text or as 1.516), with exactly the digits of its shortest repr."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value):
        from decimal import Decimal

        return format(Decimal(repr(value)), "f")
    return value


def table_csv(table: TableData) -> str:
    """The table as CSV: a header of fields, then one line per row (raw values when given)."""
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.field for c in table.columns])
    for row in table_rows(table):
        writer.writerow([csv_cell(v) for v in row.values()])
    return buf.getvalue()


def emit_table(console: Console, table: TableData, fmt: Format, *, json_obj: Any = None) -> None:
    """Show `table` in `fmt`; for json, `json_obj` (the command's documented object) or `{"rows": [...]}`:
    always one JSON object, never a bare list."""
    if fmt is Format.JSON:
        stdout_json(json_obj if json_obj is not None else {"rows": table_rows(table)})
    elif fmt is Format.CSV:
        sys.stdout.write(table_csv(table))
    else:
        print_table(console, table, plain=fmt is Format.PLAIN)
