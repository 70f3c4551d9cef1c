"""Output that survives CI logs: whole identifiers and amounts at any width, one JSON contract on every
command (usage errors included), untrusted text escaped, money with the precision it needs, help text."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from rich.console import Console

from tests.ledger_rows import add
from tests.test_cli_run import QUICKSTART, tvdb
from tvdb.cli.app import app, handle_errors
from tvdb.cli.lazy import load_all
from tvdb.cli.output import Col, Kind, TableData, clean, print_table, shorten_path
from tvdb.money import format_usd

RUN_ID = "20261201-101500-3fa2c1"
LONG_PATH = "/home/ci/builds/very-long-project-name/corpus/documents/nested/deeper/quarterly-report-2026.pdf"
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = handle_errors(app, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _render(table: TableData, *, width: int | None, plain: bool = False) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width or 80, force_terminal=width is not None, color_system=None,
                      highlight=False, emoji=False)
    print_table(console, table, plain=plain)
    return buf.getvalue()


def _sample() -> TableData:
    cols = [Col("run", Kind.ID), Col("document", Kind.PATH), Col("status", Kind.WORD), Col("note", Kind.TEXT),
            Col("spent", Kind.MONEY)]
    rows = [[RUN_ID, LONG_PATH, "interrupted", "stopped by a cancelled CI job after the parse stage", "$0.000015"]]
    return TableData(cols, rows, title="Runs")


@pytest.mark.parametrize("width", [40, 80, 200, None])  # None: piped, no COLUMNS
@pytest.mark.parametrize("plain", [False, True])
def test_tables_never_cut_ids_amounts_or_words(width: int | None, plain: bool, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    out = _render(_sample(), width=width, plain=plain)
    assert RUN_ID in out and "$0.000015" in out and "interrupted" in out
    assert "quarterly-report-2026.pdf" in out  # the file name survives any width
    words = set(re.findall(r"[\w-]+", out))
    assert {"cancelled", "stopped", "parse"} <= words  # wrapped at spaces, no word broken in two
    if width is None or width == 200:
        assert LONG_PATH in out  # room enough (or no terminal at all): the path is not shortened
    else:
        assert "…" in out and LONG_PATH not in out  # too narrow: shortened from the left only


def test_paths_are_shortened_from_the_left_keeping_the_file_name() -> None:
    assert shorten_path("/a/b/c/report.pdf", 30) == "/a/b/c/report.pdf"
    assert shorten_path("/aaaa/bbbb/cccc/report.pdf", 18) == "…/cccc/report.pdf"
    assert shorten_path("/aaaa/bbbb/cccc/report.pdf", 3) == "…/report.pdf"


def test_untrusted_text_is_escaped_and_never_markup() -> None:
    assert clean("a\x1b[2Jb\x1b]0;pwned\x07c") == "a\\x1b[2Jb\\x1b]0;pwned\\x07c"
    assert clean("evil\u202etxt.pdf") == "evil\\u202etxt.pdf"
    cols = [Col("document", Kind.PATH)]
    out = _render(TableData(cols, [["[bold red]x[/] :smile: \x1b[2J.pdf"]]), width=80)
    assert "[bold red]x[/] :smile: \\x1b[2J.pdf" in out and "\x1b" not in out


def test_a_hostile_scenario_name_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("hello world\n")
    (tmp_path / "s.yaml").write_text('name: "x[bold]y[red]:smile:"\ndocuments: [a.md]\n')
    done = tvdb(["run", str(tmp_path / "s.yaml"), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "x[bold]y[red]:smile:" in done.stdout  # markup and emoji codes print as typed
    # an escape sequence (or a '/') is no cassette file name: refused, and the refusal is escaped too
    (tmp_path / "s.yaml").write_text('name: "x\\e[2J[bold]y[/]:smile:"\ndocuments: [a.md]\n')
    done = tvdb(["run", str(tmp_path / "s.yaml"), "--no-progress"], tmp_path)
    assert done.returncode == 2
    assert "\x1b" not in done.stderr and "x\\x1b[2J[bold]y[/]:smile:" in done.stderr


@pytest.mark.parametrize("value,text", [
    (0.00002, "$0.00002"), (0.000015, "$0.000015"), (0.5, "$0.50"), (1.0, "$1.00"), (12.345678, "$12.3456"),
    (0.0, "$0"), (None, "unknown"), (0.000000001, "$0.000000001"),
    # below a nano-dollar (a session's max_cost_usd=1e-10 printed "at most $0.00")
    (1e-10, "$0.0000000001"), (4.5e-10, "$0.00000000045"), (-1e-10, "-$0.0000000001"),
])
def test_money_prints_with_the_precision_it_needs(value: float | None, text: str) -> None:
    assert format_usd(value) == text


def test_csv_cells_write_floats_in_plain_decimal() -> None:
    from tvdb.cli.output import Col, Kind, TableData, csv_cell, table_csv

    assert [csv_cell(v) for v in (1.516e-05, 1e-09, 0.0, 4.0, 0.005, 1e16, None, 3, "x")] == [
        "0.00001516", "0.000000001", "0.0", "4.0", "0.005", "10000000000000000", "", 3, "x"]
    table = TableData([Col("usd", Kind.MONEY)], [["$0.00001516"]], values=[[1.516e-05]])
    assert table_csv(table) == "usd\n0.00001516\n"


def test_two_amounts_side_by_side_print_apart_when_they_differ() -> None:
    from tvdb.money import format_usd_pair

    assert format_usd_pair(0.00751502, 0.00751514) == ("$0.00751502", "$0.00751514")
    assert format_usd_pair(1.23456, 1.23459) == ("$1.23456", "$1.23459")  # one alone reads $1.2345
    assert format_usd_pair(2.000000001, 2.000000002) == ("$2.000000001", "$2.000000002")
    assert format_usd_pair(1.5, 1.5) == ("$1.50", "$1.50")
    assert format_usd_pair(None, 1.23459) == ("unknown", "$1.2345")


def test_a_tiny_budget_is_never_shown_as_zero(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tvdb.db import open_db

    monkeypatch.setenv("TVDB_DAILY_BUDGET_USD", "0.00002")
    monkeypatch.setenv("COLUMNS", "250")  # the amounts are checked, not the wrapping: any width the runner has
    db = open_db(tmp_path / ".tvdb" / "tvdb.db")
    add(db, "2026-01-10T02:00", units=1_000)  # $0.00002 of text-embedding-3-small
    code, out, err = cli("alerts", "check", "--now", "2026-01-10T12:00:00")
    assert code == 0, err
    assert "of the $0.00002 daily budget" in out and "$0.00 " not in out
    code, out, _ = cli("alerts", "list", "--format", "plain")
    assert "$0.00002 daily budget" in out


def test_cost_report_by_run_piped_shows_whole_run_ids_and_amounts(cli: Cli, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tvdb.db import open_db

    db = open_db(tmp_path / ".tvdb" / "tvdb.db")
    add(db, "2026-01-10T02:00", units=750, run_id=RUN_ID)  # $0.000015
    for columns in ("40", "80", "200", None):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        code, out, err = cli("cost", "report", "--by", "run", "--now", "2026-01-10T12:00:00")
        assert code == 0, err
        assert RUN_ID in out and "$0.000015" in out and "-…" not in out and "5…" not in out
    code, out, _ = cli("cost", "report", "--by", "run", "--json", "--now", "2026-01-10T12:00:00")
    assert json.loads(out)["rows"][0]["run"] == RUN_ID


# -- one --json contract ----------------------------------------------------------------------------

def _leaf_commands() -> Iterator[list[str]]:
    root = load_all(typer.main.get_command(app))

    def walk(cmd: object, path: list[str]) -> Iterator[list[str]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield path

    yield from walk(root, [])


COMMANDS = sorted(" ".join(c) for c in _leaf_commands())


def test_every_command_is_covered() -> None:
    assert {"run", "resume", "runs list", "runs show", "runs compare", "emulate", "cost report", "alerts ack"} <= set(
        COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_usage_error_with_json_prints_one_object(cli: Cli, command: str) -> None:
    code, out, err = cli(*command.split(), "--no-such-option", "--json")
    assert code == 2
    doc = json.loads(out)  # exactly one object, nothing else on stdout
    assert doc["exit_code"] == 2 and doc["error"]["type"] == "NoSuchOption"
    assert "--no-such-option" in doc["error"]["message"] and "--no-such-option" in err


@pytest.mark.parametrize("args,param", [
    (["run", "x.yaml", "--mode", "foo", "--json"], "--mode"),
    (["run", "--json"], "SCENARIO"),
    (["resume", "--format", "json"], "RUN_ID"),
    (["alerts", "ack", "--json"], "ID"),
    (["alerts", "list", "--limit", "99999999999999999999", "--json"], "--limit"),
])
def test_bad_values_and_missing_arguments_answer_in_json(cli: Cli, args: list[str], param: str) -> None:
    code, out, _ = cli(*args)
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and doc["error"]["param"] == param


@pytest.mark.parametrize("args,param,message", [
    (["cost", "report", "--by", "colour"], "--by",
     "--by: unknown group 'colour'; use one of day, service, model, scenario, mode, run"),
    (["cost", "report", "--since", "99999999d"], "--since", "--since: '99999999d' is too long"),
    (["cost", "report", "--now", "soon"], "--now", "--now: 'soon' is not an ISO 8601 datetime"),
    (["cost", "prune", "--older-than", "99999999d"], "--older-than", "--older-than: '99999999d' is too long"),
    (["runs", "list", "--since", "99999999d"], "--since", "--since: '99999999d' is too long"),
    (["alerts", "mute", "--for", "99999999d"], "--for", "--for: '99999999d' is too long"),
])
def test_a_bad_option_value_found_by_the_command_names_command_and_param_in_json(
        cli: Cli, args: list[str], param: str, message: str) -> None:
    # as click's own usage errors do (`"command": "tvdb runs list", "param": "--limit"`)
    code, out, err = cli(*args, "--json")
    error = json.loads(out)["error"]
    assert code == 2 and (error["type"], error["command"], error["param"]) == (
        "OptionError", "tvdb " + " ".join(args[:2]), param)
    assert error["message"].startswith(message) and f"error: {message}" in err


def test_command_errors_answer_in_json_too(cli: Cli) -> None:
    code, out, _ = cli("cost", "report", "--by", "colour", "--json")
    doc = json.loads(out)
    assert code == 2 and doc["exit_code"] == 2 and "colour" in doc["error"]["message"]
    code, out, _ = cli("alerts", "ack", "12345", "--json")
    assert code == 2 and "12345" in json.loads(out)["error"]["message"]
    code, out, _ = cli("resume", "no-such-run", "--json")
    doc = json.loads(out)
    assert doc["passed"] is False and doc["error"]["type"] == "RunNotFound"


def test_alert_commands_take_json(cli: Cli) -> None:
    code, out, _ = cli("alerts", "mute", "--for", "2h", "--json", "--now", "2026-01-10T12:00:00")
    assert code == 0 and json.loads(out)["muted_until"].startswith("2026-01-10T14:00")
    code, out, _ = cli("alerts", "unmute", "--json", "--now", "2026-01-10T12:30:00")
    assert code == 0 and json.loads(out) == {"unmuted": True}
    code, out, _ = cli("alerts", "check", "--json")
    assert code == 0 and json.loads(out) == {"alerts": [], "deliveries": []}
    code, out, _ = cli("alerts", "ack", "--all", "--json")
    assert code == 0 and json.loads(out) == {"acknowledged": []}


# -- help ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS + [""])
def test_help_reads_well(cli: Cli, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = cli(*command.split(), "--help")
    assert code == 0 and out.startswith("Usage: tvdb")
    assert "9223372036854775807" not in out and "<bool>" not in out and "[b]" not in out
    assert not re.search(r"\w\.\.\.$|…$", out, re.M)  # no line cut short
    # examples keep one command per line (click's \b marker), not rewrapped into one paragraph
    assert all(line.strip() == "Examples:" for line in out.splitlines() if "Examples:" in line)


def test_run_help_lists_every_exit_code(cli: Cli) -> None:
    _, out, _ = cli("run", "--help")
    text = " ".join(out.split())
    for code in ("0 every expectation passed", "1 an expectation failed", "2 bad scenario", "3 a budget",
                 "4 the disk is full", "70 a bug in tvdb", "130 interrupted"):
        assert code in text


# -- resume commands that work ------------------------------------------------------------------------

@pytest.mark.slow
def test_the_printed_resume_command_resumes_a_run_with_its_data_dir(tmp_path: Path) -> None:
    import os

    data = tmp_path / "elsewhere"
    env = {k: v for k, v in os.environ.items() if k != "TVDB_DATA_DIR"}
    first = subprocess.run([sys.executable, "-m", "tvdb", "--data-dir", str(data), "run", str(QUICKSTART)],
                           cwd=tmp_path, env={**env, "TVDB_CRASH_AFTER_STAGE": "parse:INT"}, capture_output=True,
                           text=True, timeout=120)
    assert first.returncode == 130, first.stderr
    command = first.stderr.strip().splitlines()[-1].strip()
    assert command.startswith("tvdb --data-dir ") and " resume " in command
    (tmp_path / "other").mkdir()
    args = shlex.split(command)
    second = subprocess.run([sys.executable, "-m", "tvdb", *args[1:], "--no-progress"], cwd=tmp_path / "other",
                            env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "PASSED" in second.stdout and not (tmp_path / "other" / ".tvdb").exists()


def test_a_multi_line_message_keeps_its_lines_and_escapes_the_rest() -> None:
    # a cassette miss is three lines (request, diff, fix); shown as `\x0a` it was one unreadable line
    from tvdb.cli.output import data_lines

    text = data_lines("no recorded interaction\r\nclosest: #1\n  - body \x1b[2J differs")
    assert text.plain == "no recorded interaction\n    closest: #1\n      - body \\x1b[2J differs"
    assert data_lines("one line").plain == "one line"
