"""`tvdb cost report|prune|reprice` and `tvdb alerts …` end to end through the CLI's error mapping."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.engines import open_target
from tests.ledger_rows import add, at, reserve
from tests.receivers import Receiver, free_port
from tvdb.storage import Database

NOW = "2026-01-10T12:00:00+00:00"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    return tmp_path


@pytest.fixture
def db(workdir: Path, storage_env: str | None) -> Iterator[Database]:
    """The ledger the CLI will open, on each engine: TVDB_DATA_DIR's file (conftest), or the
    PostgreSQL database TVDB_DATABASE_URL names (then no SQLite file may appear)."""
    db = open_target(storage_env or str(workdir / ".tvdb" / "tvdb.db"))
    yield db
    db.close()
    if storage_env:
        assert not (workdir / ".tvdb" / "tvdb.db").exists()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], workdir: Path) -> Cli:
    return in_process_cli(monkeypatch, capsys)


def _seed(db: Database) -> None:
    add(db, "2026-01-10T02:00", units=1_234_567)  # real $0.02469134
    add(db, "2026-01-10T03:00", units=5_000_000, run_id="run-2")  # real $0.10
    add(db, "2026-01-09T03:00", units=3_000_000, impl="mock")  # would $0.06
    add(db, "2026-01-08T03:00", units=2_000_000, impl="replay")  # would $0.04
    add(db, "2026-01-10T04:00", model="text-embedding-9-mystery")  # unknown price
    add(db, "2026-01-10T05:00", service="llamaparse", model="fast", units=4)  # $0.005
    reserve(db, 30_000_000, now=at(NOW))


def test_report_json_is_one_object_with_rows_and_budget(cli: Cli, db: Database) -> None:
    _seed(db)
    code, out, err = cli(
        "cost", "report", "--by", "service", "--by", "mode", "--format", "json", "--now", NOW
    )
    assert code == 0, err
    data = json.loads(out)
    rows = {(r["service"], r["mode"]): r for r in data["rows"]}
    assert set(rows) == {("openai", "real"), ("openai", "mock"), ("openai", "replay"), ("llamaparse", "real")}
    real = rows[("openai", "real")]
    assert real["calls"] == 3 and real["unknown_price_calls"] == 1
    assert real["spent_usd"] is None and real["spent_nusd"] is None  # one call has no price…
    assert real["spent_known_usd"] == 0.12469134  # …the priced ones, unrounded
    assert data["totals"]["spent_usd"] is None and data["totals"]["spent_known_usd"] == 0.12969134
    assert rows[("openai", "mock")]["spent_usd"] == 0.0 and rows[("openai", "mock")]["would_cost_usd"] == 0.06
    assert rows[("openai", "replay")]["would_cost_usd"] == 0.04
    assert data["totals"]["calls"] == 6 and "total" not in json.dumps(data["rows"])
    assert data["budget"] == {
        "daily_usd": 1.0,
        "spent_today_usd": 0.12969134,
        "assumed_usd": 0.0,
        "reserved_usd": 0.03,
        "remaining_usd": 0.84030866,
        "percent_used": pytest.approx(12.969134),
        "projected_end_of_day_usd": 0.25938268,
        "unknown_price_calls_today": 1,
        "window": "daily 2026-01-10 (UTC)",
    }


def test_report_csv_header_and_unknown_as_empty(cli: Cli, db: Database) -> None:
    _seed(db)
    code, out, _ = cli(
        "cost", "report", "--by", "day,model", "--format", "csv", "--mode", "real", "--now", NOW
    )
    assert code == 0
    lines = list(csv.reader(io.StringIO(out)))
    assert lines[0] == [
        "day",
        "model",
        "calls",
        "errors",
        "spent_usd",
        "would_cost_usd",
        "mock_would_cost_usd",
        "replay_would_cost_usd",
        "unknown_price_calls",
        "spent_known_usd",
        "would_cost_known_usd",
        "mock_would_cost_known_usd",
        "replay_would_cost_known_usd",
        "llamaparse_credits",
    ]
    unpriced = ["2026-01-10", "text-embedding-9-mystery", "1", "0", "", "", "0.0", "0.0", "1"]
    assert [*unpriced, "0.0", "0.0", "0.0", "0.0", "0.0"] in lines
    priced = ["2026-01-10", "fast", "1", "0", "0.005", "0.005", "0.0", "0.0", "0"]
    assert [*priced, "0.005", "0.005", "0.0", "0.0", "4.0"] in lines  # 4 pages at fast: 4 credits
    assert len(lines) == 4


def test_report_csv_money_is_plain_decimal_never_scientific(cli: Cli, db: Database) -> None:
    add(db, "2026-01-10T02:00", units=758)  # 758 tokens at $0.02 per 1M: $0.00001516
    code, out, _ = cli("cost", "report", "--format", "csv", "--now", NOW)
    assert code == 0 and "e-" not in out
    row = dict(zip(*csv.reader(io.StringIO(out)), strict=True))
    assert (row["spent_usd"], row["would_cost_usd"], row["spent_known_usd"]) == ("0.00001516",) * 3


def test_report_table_shows_budget_would_cost_and_chart(cli: Cli, db: Database) -> None:
    _seed(db)
    code, out, _ = cli("cost", "report", "--now", NOW)
    assert code == 0
    assert "spent today   $0.12969134 of $1.00 (13.0%)" in out
    assert "reserved      $0.03" in out and "remaining     $0.84030866" in out
    assert "projected     $0.25938268 by end of day" in out
    assert "would cost: mock" in out and "$0.06" in out and "$0.04" in out
    assert "(+1 unpriced)" in out
    assert "2026-01-10  " in out and "█" in out and "+$0.06" in out  # bar chart with mock value on the 9th


def test_report_plain_has_no_box_drawing_characters(cli: Cli, db: Database) -> None:
    _seed(db)
    code, out, _ = cli("cost", "report", "--format", "plain", "--now", NOW)
    assert code == 0
    assert [c for c in out if "\u2500" <= c <= "\u259f"] == []  # box drawing and block elements
    lines = out.splitlines()
    at = lines.index("Daily budget · daily 2026-01-10 (UTC)")
    assert lines[at + 1:at + 5] == ["  spent today   $0.12969134 of $1.00 (13.0%)",
                                    "  reserved      $0.03 (calls in flight)", "  remaining     $0.84030866",
                                    "  projected     $0.25938268 by end of day at today's rate (26% of budget)"]
    assert next(x for x in lines if x.startswith("2026-01-10 ")).split()[1] == "#" * 30  # the day's bar, in ASCII


def test_report_day_in_configured_zone(
    cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(db, "2026-01-09T23:30")  # 2026-01-10 in Berlin
    monkeypatch.setenv("TVDB_TIMEZONE", "Europe/Berlin")
    code, out, _ = cli("cost", "report", "--day", "2026-01-10", "--format", "json", "--now", NOW)
    assert code == 0 and json.loads(out)["totals"]["calls"] == 1
    monkeypatch.setenv("TVDB_TIMEZONE", "UTC")
    code, out, _ = cli("cost", "report", "--day", "2026-01-10", "--format", "json", "--now", NOW)
    assert json.loads(out)["totals"]["calls"] == 0


def test_report_usage_errors_exit_2(cli: Cli, db: Database) -> None:
    code, _, err = cli("cost", "report", "--by", "colour")
    assert code == 2 and "--by: unknown group 'colour'" in err
    code, _, err = cli("cost", "report", "--since", "last tuesday")
    assert code == 2 and "--since" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cost", "report", "--since", "99999999d"), "--since: '99999999d' is too long"),
        (("cost", "report", "--until", "9999-12-31"), "--until: '9999-12-31' is out of range"),
        (("cost", "report", "--day", "0001-01-01", "--now", NOW), "--day: '0001-01-01' is out of range"),
        (("cost", "report", "--now", "9999-12-31T23:00"), "--now: '9999-12-31T23:00' is out of range"),
        (("cost", "report", "--now", "soon"), "--now: 'soon' is not an ISO 8601 datetime"),
        (("cost", "prune", "--older-than", "99999999d"), "--older-than: '99999999d' is too long"),
        (("cost", "prune", "--older-than", "36500d", "--now", "0050-01-01T00:00"),
         "--older-than: '36500d' is out of range"),
        (("alerts", "mute", "--for", "99999999d"), "--for: '99999999d' is too long"),
        (("alerts", "mute", "--for", "9999d", "--now", "9990-01-01T00:00"), "--for: '9999d' is out of range"),
        (("alerts", "list", "--now", "0001-01-01T00:00"), "--now: '0001-01-01T00:00' is out of range"),
    ],
)
def test_huge_or_extreme_values_are_usage_errors_not_tracebacks(
    cli: Cli, db: Database, args: tuple[str, ...], message: str
) -> None:
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert message in err and "Traceback" not in err and "OverflowError" not in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("alerts", "list", "--limit", "99999999999999999999999"), "--limit"),
        (("alerts", "list", "--limit", "-3"), "--limit"),
        (("alerts", "ack", "99999999999999999999999"), "ID"),
    ],
)
def test_numbers_sqlite_cannot_hold_are_usage_errors(
    cli: Cli, db: Database, args: tuple[str, ...], option: str
) -> None:
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert f"Invalid value for '{option}'" in err and "Traceback" not in err


def test_prune_then_report_is_unchanged(cli: Cli, db: Database) -> None:
    _seed(db)
    args = (
        "cost",
        "report",
        "--since",
        "2026-01-01",
        "--by",
        "day",
        "--by",
        "mode",
        "--format",
        "json",
        "--now",
        NOW,
    )
    before = json.loads(cli(*args)[1])
    code, out, _ = cli("cost", "prune", "--older-than", "1d", "--json", "--now", NOW)
    assert code == 0
    pruned = json.loads(out)
    assert (pruned["rows_folded"], pruned["last_day"]) == (1, "2026-01-08")  # whole days before 01-09
    after = json.loads(cli(*args)[1])
    assert after["aggregated_rows"] == 1
    for key in ("aggregated_rows", "generated_at"):
        before.pop(key), after.pop(key)
    assert after == before
    code, _, err = cli("cost", "prune", "--older-than", "12h")
    assert code == 2 and "at least 1d" in err


def test_reprice_under_a_config_price_keeps_old_values(
    cli: Cli, db: Database, workdir: Path
) -> None:
    add(db, "2026-01-10T02:00", units=1_000_000)
    (workdir / "tvdb.yaml").write_text(
        "prices:\n  openai:\n    text-embedding-3-small:\n      usd_per_1m_tokens: '0.01'\n", "utf-8"
    )
    code, out, _ = cli("cost", "reprice", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["changed"] == 1
    assert db.execute("SELECT cost_nusd FROM usage").fetchone()[0] == 20_000_000
    code, out, _ = cli("cost", "reprice")
    assert code == 0
    assert "changed 1 of 1 row(s)" in out and "$0.02 → $0.01" in out and "usage_reprices" in out
    assert db.execute("SELECT cost_nusd, price_version FROM usage").fetchone() == (
        10_000_000,
        "2026-11-01+config",
    )
    assert db.execute("SELECT old_cost_nusd, old_price_version FROM usage_reprices").fetchone() == (
        20_000_000,
        "2026-11-01",
    )
    code, _, err = cli("cost", "reprice", "--price-version", "1999")
    assert code == 2 and "unknown price version '1999'" in err


def test_alerts_list_ack_mute_unmute(cli: Cli, db: Database) -> None:
    add(db, "2026-01-10T02:00", units=45_000_000)  # $0.90
    code, out, _ = cli("alerts", "check", "--now", NOW)
    assert code == 0 and "[info]" in out and "[warning]" in out and "no alert channel" not in out
    data = json.loads(cli("alerts", "list", "--json", "--now", NOW)[1])
    assert [a["title"] for a in data["alerts"]] == ["Daily budget 80% used", "Daily budget 50% used"]
    first = data["alerts"][1]["id"]
    code, out, _ = cli("alerts", "ack", str(first), "--now", NOW)
    assert code == 0 and f"acknowledged 1 alert(s): {first}" in out
    assert len(json.loads(cli("alerts", "list", "--json")[1])["alerts"]) == 1
    assert len(json.loads(cli("alerts", "list", "--all", "--json")[1])["alerts"]) == 2
    code, _, err = cli("alerts", "ack", "4242")
    assert code == 2 and "no open alert with id 4242" in err
    code, _, err = cli("alerts", "ack")
    assert code == 2 and "give alert ids or --all" in err
    code, out, _ = cli("alerts", "mute", "--for", "2h", "--now", NOW)
    assert code == 0 and "muted until 2026-01-10T14:00+00:00" in out
    assert (
        json.loads(cli("alerts", "list", "--json", "--now", NOW)[1])["muted_until"]
        == "2026-01-10T14:00:00+00:00"
    )
    code, out, _ = cli("alerts", "unmute", "--now", NOW)
    assert "alerts unmuted" in out
    assert cli("alerts", "mute", "--for", "soon")[0] == 2
    code, out, _ = cli("alerts", "ack", "--all")
    assert code == 0 and "acknowledged 1 alert(s)" in out


def test_alerts_test_sends_and_never_prints_secrets(
    cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("alerts", "test")
    assert code == 2 and "TVDB_ALERTS_WEBHOOK_URL" in err
    receiver = Receiver([200])
    try:
        monkeypatch.setenv("TVDB_ALERTS_WEBHOOK_URL", f"{receiver.url}/hook")
        dead = f"http://127.0.0.1:{free_port()}/services/T0CANARY/B0CANARY/sk-canary-slack"
        monkeypatch.setenv("TVDB_ALERTS_SLACK_WEBHOOK_URL", dead)
        monkeypatch.setenv("TVDB_ALERTS_DELIVERY_ATTEMPTS", "1")
        code, out, err = cli("alerts", "test")
    finally:
        receiver.close()
    assert code == 1
    assert f"webhook {receiver.url}/hook: delivered after 1 attempt(s)" in out
    assert "slack (incoming webhook; URL hidden): failed" in out
    assert "CANARY" not in out + err and "sk-canary" not in out + err
    assert receiver.requests[0][2]["alert"]["kind"] == "test"


@pytest.mark.parametrize(
    "command",
    [("cost", "report"), ("cost", "prune"), ("cost", "reprice"), ("alerts", "mute"), ("alerts", "list")],
)
def test_help_teaches_with_examples(cli: Cli, command: tuple[str, ...]) -> None:
    code, out, _ = cli(*command, "--help")
    assert code == 0 and "Examples" in out and f"tvdb {' '.join(command)}" in out


def _chart_title(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("Real spend per day"))


def test_report_chart_title_states_the_days_it_shows(cli: Cli, db: Database) -> None:
    """The title is derived from the days the chart draws: the default 7-day report says 7 days, a
    longer period says it shows only its last 31, a single --day says that day."""
    _seed(db)
    code, out, _ = cli("cost", "report", "--now", NOW)
    assert code == 0
    assert _chart_title(out) == "Real spend per day · 2026-01-04 … 2026-01-10 (7 days)"
    assert "31" not in _chart_title(out)
    code, out, _ = cli("cost", "report", "--since", "60d", "--now", NOW)
    assert code == 0
    assert _chart_title(out) == "Real spend per day · 2025-12-11 … 2026-01-10 (the last 31 days of the period)"
    code, out, _ = cli("cost", "report", "--day", "2026-01-09", "--now", NOW)
    assert code == 0
    assert _chart_title(out) == "Real spend per day · 2026-01-09 (1 day)"
