"""Retention: pruning folds old rows into daily aggregates and every report stays exact."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.ledger_rows import add, at
from tvdb.errors import ConfigError
from tvdb.ledger.periods import Period, parse_period
from tvdb.ledger.reports import build_report, report_to_dict
from tvdb.ledger.retention import prune
from tvdb.storage import Database

NOW = at("2026-06-01T12:00")
GROUPINGS = [("day",), ("service",), ("model",), ("scenario",), ("mode",), ("run",), ("day", "mode", "run")]


@pytest.fixture
def db(any_db: Database) -> Database:
    """The ledger on each engine in turn (tests/conftest.py: any_db)."""
    return any_db


def _seed(db: Database) -> None:
    """Calls spread over 150 days, every kind of row: real/mock/replay, errors, unknown prices."""
    start = at("2026-01-01T00:00")
    for i in range(150):
        ts = start + dt.timedelta(days=i, hours=i % 24, minutes=i % 60)
        add(db, ts, units=1_000 + 37 * i, run_id=f"run-{i % 4}", scenario=f"s{i % 3}")
        add(db, ts + dt.timedelta(seconds=30), units=999 + i, run_id=f"run-{i % 4}", scenario=f"s{i % 3}")
        add(db, ts + dt.timedelta(minutes=1), impl=("mock", "replay")[i % 2], units=500 + i)
        if i % 7 == 0:
            add(db, ts + dt.timedelta(minutes=2), status="error")
        if i % 11 == 0:
            add(db, ts + dt.timedelta(minutes=3), model="text-embedding-9-mystery")
        if i % 5 == 0:
            add(db, ts + dt.timedelta(minutes=4), service="llamaparse", model="agentic", units=3)


def _reports(db: Database, tz: str = "UTC") -> list[dict[str, Any]]:
    periods = [
        Period(None, None),
        parse_period(since="2026-02-01", until="2026-02-28", timezone=tz),
        parse_period(day="2026-01-15", timezone=tz),
    ]
    out = []
    for period in periods:
        for by in GROUPINGS:
            data = report_to_dict(
                build_report(db, period=period, now=NOW, daily_budget_usd=1.0, timezone=tz, by=by)
            )
            for key in ("aggregated_rows", "generated_at"):
                data.pop(key)
            out.append(data)
    return out


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_prune_keeps_every_report_exact(db: Database, tz: str) -> None:
    _seed(db)
    before = _reports(db, tz)
    rows_before = _count(db, "usage")
    result = prune(db, dt.timedelta(days=90), NOW, timezone=tz)
    assert result.rows_folded > 0
    assert _count(db, "usage") == rows_before - result.rows_folded
    assert _count(db, "usage_daily") == result.aggregates < result.rows_folded
    assert _reports(db, tz) == before


def test_prune_folds_whole_local_days_before_the_cutoff(db: Database) -> None:
    add(db, "2026-03-02T22:30")  # 2026-03-02 23:30 in Berlin: folded
    add(db, "2026-03-02T23:30")  # 2026-03-03 00:30 in Berlin: kept (same local day as the cutoff)
    add(db, "2026-03-03T11:00")  # kept
    result = prune(db, dt.timedelta(days=90), NOW, timezone="Europe/Berlin")  # NOW-90d = 2026-03-03 12:00
    assert result.cutoff == at("2026-03-02T23:00")
    assert result.rows_folded == 1
    assert (result.first_day, result.last_day) == (dt.date(2026, 3, 2), dt.date(2026, 3, 2))
    assert _count(db, "usage") == 2
    row = db.execute("SELECT day, timezone, start_ts, end_ts, calls FROM usage_daily").fetchone()
    assert row == (
        "2026-03-02",
        "Europe/Berlin",
        "2026-03-01T23:00:00.000000Z",
        "2026-03-02T23:00:00.000000Z",
        1,
    )


def test_prune_is_idempotent_and_adds_late_rows_into_the_same_aggregate(db: Database) -> None:
    _seed(db)
    first = prune(db, dt.timedelta(days=90), NOW)
    snapshot = list(db.execute("SELECT * FROM usage_daily ORDER BY key"))
    again = prune(db, dt.timedelta(days=90), NOW)
    assert again.rows_folded == 0 and again.aggregates == 0
    assert list(db.execute("SELECT * FROM usage_daily ORDER BY key")) == snapshot
    # a late row for an already-folded day and group is added to its aggregate, not duplicated
    add(db, "2026-01-01T05:00", units=1_000, run_id="run-0", scenario="s0")
    late = prune(db, dt.timedelta(days=90), NOW)
    assert late.rows_folded == 1 and late.aggregates == 1
    assert _count(db, "usage_daily") == first.aggregates
    calls = db.execute("SELECT SUM(calls) FROM usage_daily").fetchone()[0]
    assert calls == first.rows_folded + 1


def test_prune_preserves_unknown_prices_and_error_counts(db: Database) -> None:
    add(db, "2026-01-10T10:00", model="text-embedding-9-mystery")
    add(db, "2026-01-10T10:01", model="text-embedding-9-mystery")
    add(db, "2026-01-10T10:02", status="error")
    prune(db, dt.timedelta(days=90), NOW)
    r = build_report(db, period=Period(None, None), now=NOW, daily_budget_usd=1.0, by=("model",))
    mystery = next(row for row in r.rows if row.keys["model"] == "text-embedding-9-mystery")
    assert mystery.calls == 2 and mystery.spent_usd is None and mystery.unknown_price_calls == 2
    assert r.totals.errors == 1
    assert r.aggregated_rows == 2


def test_prune_never_touches_today_and_keeps_the_budget(db: Database) -> None:
    add(db, "2026-06-01T01:00", units=5_000_000)
    add(db, "2026-05-31T01:00", units=5_000_000)  # within the last day's local date: kept
    add(db, "2026-05-30T23:00", units=5_000_000)
    result = prune(db, dt.timedelta(days=1), NOW)
    assert result.cutoff == at("2026-05-31T00:00")
    assert result.rows_folded == 1
    b = build_report(db, period=Period(None, None), now=NOW, daily_budget_usd=1.0).budget
    assert b.spent_today_nusd == 100_000_000


def test_dry_run_writes_nothing(db: Database) -> None:
    _seed(db)
    n = _count(db, "usage")
    result = prune(db, dt.timedelta(days=90), NOW, dry_run=True)
    assert result.dry_run and result.rows_folded > 0
    assert _count(db, "usage") == n and _count(db, "usage_daily") == 0


def test_prune_refuses_less_than_a_day(db: Database) -> None:
    with pytest.raises(ConfigError, match="--older-than must be at least 1d"):
        prune(db, dt.timedelta(hours=12), NOW)
