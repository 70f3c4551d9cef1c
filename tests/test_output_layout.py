"""Tables and long lines that read well at any width: a long path inside running text (doctor's
tokenizer line) is shortened from the left only when no table fits otherwise; a terminal too narrow
for any table gets one block per row; wrapped lines keep their indent; no line carries trailing
padding; and every command's `--json` is exactly one JSON object."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from tests.cli_support import Cli, in_process_cli
from tests.test_cli_output import COMMANDS
from tests.test_cli_run import QUICKSTART
from tvdb.cli.output import Col, Kind, TableData, print_hanging, print_table, shorten_path_word, wrap_words

CACHE_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # tiktoken's cl100k_base cache file name
LONG_DIR = "/home/ci/builds/a-rather-long-project-name/shared/tiktoken_cache"
RUN_ID = "20261201-101500-3fa2c1"


def _unbreakable(line: str) -> bool:
    """A line that is one word after its indent and label: no layout could make it narrower."""
    return " " not in line.strip().split(": ", 1)[-1] or " " not in line.strip()


def _doctor_like() -> TableData:
    cols = [Col("", Kind.WORD, key="status"), Col("check", Kind.TEXT, key="name"), Col("detail", Kind.TEXT),
            Col("id", Kind.ID), Col("spent", Kind.MONEY)]
    rows = [
        ["✓", "config", "valid (no tvdb.yaml: built-in defaults)", RUN_ID, "$0.000015"],
        ["✓", "tokenizer", f"cl100k_base loads offline ({LONG_DIR}/{CACHE_FILE})", RUN_ID, "$0"],
        ["·", "key LLAMA_CLOUD_API_KEY", "not set (not needed: the parser runs mock)", RUN_ID, "$12.3456"],
    ]
    return TableData(cols, rows, title="tvdb doctor")


def _render(table: TableData, width: int | None, *, plain: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width or 80, force_terminal=width is not None, color_system=None,
                      highlight=False, emoji=False)
    print_table(console, table, plain=plain)
    return buf.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 126, 200, None])  # None: piped, no COLUMNS
@pytest.mark.parametrize("plain", [False, True])
def test_a_long_path_in_text_never_stops_a_table_from_narrowing(width: int | None, plain: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = _render(_doctor_like(), width, plain=plain)
    lines = out.splitlines()
    assert lines[0] == "tvdb doctor"  # the title is not padded to the table's width
    assert not [line for line in lines if line != line.rstrip()], "trailing spaces"
    assert out.count(RUN_ID) == 3 and "$0.000015" in out and "$12.3456" in out  # never cut
    assert CACHE_FILE in out and "LLAMA_CLOUD_API_KEY" in out  # a file name or an id is never cut
    assert {"defaults)", "offline", "needed:"} <= set(out.split())  # wrapped at spaces only
    if width is None:
        assert f"{LONG_DIR}/{CACHE_FILE}" in out  # a pipe is not narrowed at all
        return
    # every line fits, except one holding a token that is longer than any line could be
    too_long = [line for line in lines if len(line) > width]
    assert all(_unbreakable(line) for line in too_long), too_long
    if width >= 200:
        assert f"{LONG_DIR}/{CACHE_FILE}" in out  # room enough: nothing shortened
    if width == 126:
        assert "┃" in out or plain  # wrapping the text at spaces is enough for a table
    if width <= 60:
        assert f"…/{CACHE_FILE}" in out  # shortened from the left, the file name kept


def test_a_table_too_wide_for_borders_drops_them_before_giving_up_the_table() -> None:
    cols = [Col(h, Kind.NUM) for h in ("pages", "chunks", "tokens", "vectors", "docs", "failed")]
    cols = [Col("document", Kind.PATH), *cols, Col("would cost", Kind.MONEY)]
    table = TableData(cols, [["getting-started.md", "1", "2", "196", "2", "4", "0", "$0.00125392"]])
    out = _render(table, 80)
    assert "┃" not in out and "document" in out.splitlines()[0]  # 83 cells with borders, 71 without
    assert "getting-started.md" in out.splitlines()[1] and "$0.00125392" in out.splitlines()[1]


def test_too_narrow_for_any_table_prints_one_block_per_row() -> None:
    out = _render(_doctor_like(), 50)
    assert "┃" not in out
    lines = out.splitlines()
    assert lines[1] == "✓ config"  # the mark and the name head each block
    assert f"  id: {RUN_ID} · spent: $0.000015" in lines
    assert "  detail: cl100k_base loads offline" in lines and f"          (…/{CACHE_FILE})" in lines


def test_a_tables_totals_row_is_the_last_block_when_it_cannot_be_a_table() -> None:
    cols = [Col("service", Kind.ID, footer="total"), Col("calls", Kind.NUM, footer="14"),
            Col("spent (real)", Kind.MONEY, footer="$0.01503056"), Col("note", Kind.TEXT, footer="")]
    rows = [["llamaparse", "8", "$0.015", "parse jobs of every tier, " * 3], ["openai", "6", "$0.00003056", ""]]
    lines = _render(TableData(cols, rows, title="Spend by service"), 30).splitlines()
    assert "┃" not in "\n".join(lines)
    assert lines[-6:] == ["openai", "  calls: 6", "  spent (real): $0.00003056",
                          "total", "  calls: 14", "  spent (real): $0.01503056"]  # an empty footer cell is left out


def test_path_words_keep_their_brackets_when_shortened() -> None:
    assert shorten_path_word(f"({LONG_DIR}/{CACHE_FILE})", 60) == f"(…/tiktoken_cache/{CACHE_FILE})"
    assert shorten_path_word(f"({LONG_DIR}/{CACHE_FILE}),", 10) == f"(…/{CACHE_FILE}),"


def test_words_wrap_at_spaces_and_long_words_stay_whole() -> None:
    lines = wrap_words(Text("query 'clean barnacles' finds quickstart/field-guide.pdf in the top 3"), 20, 16)
    assert [line.plain for line in lines] == ["query 'clean", "barnacles' finds", "quickstart/field-guide.pdf",
                                              "in the top 3"]


@pytest.mark.parametrize("width", [40, 60, 80])
def test_wrapped_lines_keep_their_hanging_indent(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=True, color_system=None)
    body = "query 'clean barnacles off the sensor window' finds quickstart/field-guide.pdf in the top 3 — rank 1"
    print_hanging(console, " ✓ ", Text(body), indent=3)
    lines = buf.getvalue().splitlines()
    assert len(lines) > 1 and lines[0].startswith(" ✓ query")
    assert all(line.startswith("   ") and line[3] != " " for line in lines[1:])
    assert " ".join(line.strip(" ✓") for line in lines) == body  # nothing lost, no word broken
    assert all(len(line) <= width for line in lines)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TVDB_DATA_DIR", raising=False)
    return in_process_cli(monkeypatch, capsys)


@pytest.mark.parametrize("columns", ["40", "80", "200", None])
def test_doctor_reads_well_with_a_long_tokenizer_path(cli: Cli, tmp_path: Path, columns: str | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "a-rather-long-checkout-directory-name" / "shared" / "tiktoken_cache"
    cache.mkdir(parents=True)
    shutil.copy(Path(os.environ["TIKTOKEN_CACHE_DIR"]) / CACHE_FILE, cache / CACHE_FILE)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    code, out, err = cli("doctor")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "tvdb doctor" and not [line for line in lines if line != line.rstrip()]
    assert CACHE_FILE in out and "LLAMA_CLOUD_API_KEY" in out
    if columns is None or columns == "200":
        assert str(cache / CACHE_FILE) in out
    if columns is not None:
        assert all(len(line) <= int(columns) or _unbreakable(line) for line in lines), out
    if columns == "80":
        assert "┃" in out  # a table still, its detail column wrapped and the path shortened
    assert "fix" not in lines[1]  # no empty "fix" column when nothing needs fixing


def test_wrapped_expectations_stay_under_their_mark(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, err = cli("run", str(QUICKSTART), "--no-progress")
    assert code == 0, err
    block = out[out.index("Expectations\n"):out.index("Spent ")].splitlines()[1:]
    assert any(line.startswith(" ✓ query") for line in block)
    assert all(line.startswith(" ✓ ") or line.startswith("   ") for line in block), block
    assert all(len(line) <= 60 for line in block)


# -- one JSON object for every command ------------------------------------------------------------

SERVERS = {"emulate", "webhook serve"}  # run until stopped; webhook serve's --json: tests/test_webhooks.py


def _arguments(run_a: str, run_b: str, tmp: Path) -> dict[str, list[str]]:
    cassettes = Path(__file__).parent.parent / "cassettes"
    one = next(iter(sorted(cassettes.glob("*.yaml"))), cassettes / "none.yaml")
    return {
        "run": [str(QUICKSTART), "--no-progress"], "resume": [run_b], "replay replay": ["--scenario", str(QUICKSTART)],
        "replay merge": [str(tmp / "missing.json")],
        "runs list": [], "runs show": [run_a], "runs compare": [run_a, run_b], "logs": ["--run", run_a],
        "doctor": [], "report": ["--html", str(tmp / "r.html")],
        "cost report": [], "cost advise": [], "cost prune": ["--older-than", "400d", "--dry-run"],
        "cost reprice": ["--dry-run"], "cost reconcile": [str(tmp / "missing.csv")],
        "alerts list": [], "alerts check": [], "alerts ack": ["--all"], "alerts mute": ["--for", "1h"],
        "alerts unmute": [], "alerts test": [],
        "ledger migrate": ["--to", "postgresql://tvdb@127.0.0.1:1/unreachable"],  # exit 4, one JSON object
        "cassette check": [str(cassettes)], "cassette list": [str(cassettes)], "cassette show": [str(one)],
        "cassette drift": [str(tmp / "missing.yaml")],  # exit 2 (no such cassette) before any request
    }


def test_every_command_prints_exactly_one_json_object(cli: Cli, tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        code, out, err = cli("run", str(QUICKSTART), "--no-progress", "--json", "--fresh")
        assert code == 0, err
        runs.append(json.loads(out)["run_id"])
    arguments = _arguments(runs[0], runs[1], tmp_path)
    assert set(arguments) == set(COMMANDS) - SERVERS, "a new command needs its --json checked here"
    for command, args in arguments.items():
        code, out, err = cli(*command.split(), *args, "--json")
        doc = json.loads(out)  # raises on JSON Lines, a bare list or any extra output
        assert isinstance(doc, dict), (command, out[:200])
        if code not in (0, 1):
            assert doc["exit_code"] == code and doc["error"]["message"], command
        assert not re.search(r"^\s*[\[{]", err, re.M), (command, err)  # no JSON leaked to stderr
    code, out, err = cli("resume", runs[1][:20], "--json", "--no-progress")  # a run id prefix, as everywhere
    assert code == 0 and json.loads(out)["run_id"] == runs[1], err


# -- a page the parser could not read is a warning, not silence -----------------------------------

def test_a_failed_page_is_warned_about_in_the_run_output_json_and_runs_show(cli: Cli, tmp_path: Path) -> None:
    shutil.copy(QUICKSTART.parent / "quickstart" / "field-guide.pdf", tmp_path / "guide.pdf")
    (tmp_path / "s.yaml").write_text("name: partial\ndocuments: [guide.pdf]\n"
                                     "faults:\n  - {service: llamaparse, kind: partial, pages: 1}\n")
    warning = "page 1: not parsed (PAGE_PARSING_FAILED (injected fault))"
    code, out, err = cli("run", "s.yaml", "--no-progress", "--json")
    assert code == 0, err
    result = json.loads(out)
    doc = result["documents"][0]
    assert doc["status"] == "complete" and doc["pages"] == 3 and doc["warnings"] == [warning]
    assert doc["would_cost_usd"] == 0.00375346  # summed in nano-dollars: no 0.0037534599999999997
    code, out, _ = cli("run", "s.yaml", "--no-progress", "--fresh")
    assert code == 0 and f"! guide.pdf: {warning}" in out
    code, out, _ = cli("runs", "show", result["run_id"], "--json")
    assert json.loads(out)["documents"][0]["warnings"] == [warning]


# -- NO_COLOR, TERM=dumb and COLUMNS --------------------------------------------------------------

def _doctor(tmp: Path, **env: str) -> str:
    import subprocess
    import sys

    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS", "FORCE_COLOR")}
    done = subprocess.run([sys.executable, "-m", "tvdb", "--data-dir", str(tmp / ".tvdb"), "doctor"], cwd=tmp,
                          env={**full, "FORCE_COLOR": "1", **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_no_color_term_dumb_and_columns_are_honoured(tmp_path: Path) -> None:
    coloured = _doctor(tmp_path, TERM="xterm-256color", COLUMNS="120")
    assert "\x1b[32m" in coloured  # a terminal (FORCE_COLOR stands in for one) gets colour
    assert "\x1b[" not in _doctor(tmp_path, TERM="xterm-256color", COLUMNS="120", NO_COLOR="1")  # no bold either
    dumb = _doctor(tmp_path, TERM="dumb", COLUMNS="120")
    assert "\x1b" not in dumb
    widths = [len(line) for line in dumb.splitlines()]
    assert 80 < max(widths) <= 120  # COLUMNS wins over the 80 columns Rich assumes for TERM=dumb
    narrow = _doctor(tmp_path, TERM="dumb", COLUMNS="60").splitlines()
    assert all(len(line) <= 60 or _unbreakable(line) for line in narrow), narrow


@pytest.mark.parametrize("env", [{"NO_COLOR": "1", "TERM": "xterm-256color"}, {"TERM": "dumb"}])
def test_no_color_and_a_dumb_terminal_emit_no_escape_codes_at_all(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    # Rich's no_color keeps bold and dim; https://no-color.org asks for no colour, and tvdb emits no styling
    from tvdb.cli.output import make_console

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    make_console(force_terminal=True).print("[bold]ready[/bold] [dim]note[/dim] [green]✓[/green]")
    assert capsys.readouterr().out == "ready note ✓\n"
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    make_console(force_terminal=True).print("[bold]ready[/bold]")
    assert "\x1b[1m" in capsys.readouterr().out  # a terminal without NO_COLOR keeps its styles
