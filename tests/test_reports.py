"""Cost reports: exact sums in nano-USD, grouping, filters, unknown prices, day/zone edges, budget block."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlite_utils

from tests.ledger_rows import NUSD_PER_1M_TOKENS, NUSD_PER_FAST_PAGE, add, at, reserve
from tvdb.db import open_db
from tvdb.errors import ConfigError
from tvdb.ledger.periods import Period, parse_duration, parse_period
from tvdb.ledger.reports import ReportFilters, build_report, report_to_dict

NOW = at("2026-01-10T12:00")
ALL = Period(None, None)


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_db(tmp_path / "tvdb.db")


def _report(
    db: sqlite_utils.Database,
    by: tuple[str, ...] = ("service",),
    period: Period = ALL,
    tz: str = "UTC",
    **filters: tuple[str, ...],
):  # type: ignore[no-untyped-def]
    return build_report(
        db, period=period, now=NOW, daily_budget_usd=1.0, timezone=tz, by=by, filters=ReportFilters(**filters)
    )


def _seed(db: sqlite_utils.Database) -> None:
    add(db, "2026-01-10T08:00", units=1_000_000)  # real openai $0.02
    add(db, "2026-01-10T09:00", units=2_500_000)  # real openai $0.05
    add(db, "2026-01-09T09:00", impl="mock", units=1_000_000)  # mock: would $0.02, spent 0
    add(db, "2026-01-09T10:00", impl="replay", units=3_000_000)  # replay: would $0.06
    add(db, "2026-01-10T10:00", service="llamaparse", model="fast", units=10, run_id="run-2")  # $0.0125
    add(db, "2026-01-10T10:30", status="error")  # failed attempt: $0


def test_groups_by_service_with_exact_sums_and_separate_mock_replay_values(db: sqlite_utils.Database) -> None:
    _seed(db)
    r = _report(db)
    rows = {row.keys["service"]: row for row in r.rows}
    openai = rows["openai"]
    assert openai.calls == 5 and openai.errors == 1
    assert openai.spent.nusd == 70_000_000 and openai.spent_usd == pytest.approx(0.07, abs=0)
    assert openai.mock_would_cost.nusd == 20_000_000
    assert openai.replay_would_cost.nusd == 60_000_000
    assert openai.would_cost.nusd == 150_000_000
    assert rows["llamaparse"].spent.nusd == 10 * NUSD_PER_FAST_PAGE
    assert r.totals.group == () and r.totals.calls == 6
    assert r.totals.spent.nusd == 70_000_000 + 12_500_000


def test_several_group_keys_and_mode_names_the_implementation(db: sqlite_utils.Database) -> None:
    _seed(db)
    r = _report(db, by=("day", "mode"))
    got = {
        (row.keys["day"], row.keys["mode"]): (row.calls, row.spent.nusd, row.would_cost.nusd)
        for row in r.rows
    }
    assert got == {
        ("2026-01-09", "mock"): (1, 0, 20_000_000),
        ("2026-01-09", "replay"): (1, 0, 60_000_000),
        ("2026-01-10", "real"): (4, 82_500_000, 82_500_000),
    }
    assert [row.keys["day"] for row in r.rows] == sorted(row.keys["day"] for row in r.rows)


def test_group_by_run_scenario_and_model(db: sqlite_utils.Database) -> None:
    _seed(db)
    r = _report(db, by=("run", "scenario", "model"))
    keys = {tuple(row.keys.values()) for row in r.rows}
    assert ("run-2", "quick", "fast") in keys and ("run-1", "quick", "text-embedding-3-small") in keys


def test_filters_select_rows(db: sqlite_utils.Database) -> None:
    _seed(db)
    assert _report(db, services=("llamaparse",)).totals.calls == 1
    assert _report(db, implementations=("mock", "replay")).totals.spent.nusd == 0
    assert _report(db, implementations=("mock", "replay")).totals.would_cost.nusd == 80_000_000
    assert _report(db, runs=("run-2",)).totals.spent.nusd == 12_500_000
    assert _report(db, models=("nope",)).rows == ()
    assert _report(db, scenarios=("quick",)).totals.calls == 6


def test_unknown_prices_are_unknown_never_zero(db: sqlite_utils.Database) -> None:
    add(db, "2026-01-10T08:00", model="text-embedding-9-mystery")
    add(db, "2026-01-10T08:05", model="text-embedding-9-mystery", impl="mock")
    add(db, "2026-01-10T08:10")
    r = _report(db, by=("model",))
    mystery = next(row for row in r.rows if row.keys["model"] == "text-embedding-9-mystery")
    assert mystery.spent_usd is None and mystery.would_cost_usd is None
    assert mystery.unknown_price_calls == 2
    assert r.totals.spent.nusd == NUSD_PER_1M_TOKENS and r.totals.spent.unknown == 1
    assert r.totals.spent_usd == 0.02  # known part; the unknown count travels with it
    data = report_to_dict(r)
    row = next(x for x in data["rows"] if x["model"] == "text-embedding-9-mystery")
    assert row["spent_usd"] is None and row["unknown_price_calls"] == 2
    assert data["budget"]["unknown_price_calls_today"] == 1


def test_day_edges_follow_the_configured_time_zone(db: sqlite_utils.Database) -> None:
    add(db, "2026-01-05T23:30")  # 2026-01-06 00:30 in Berlin
    add(db, "2026-01-06T22:59")  # 2026-01-06 23:59 in Berlin
    add(db, "2026-01-06T23:00")  # 2026-01-07 00:00 in Berlin
    berlin = parse_period(day="2026-01-06", timezone="Europe/Berlin")
    utc = parse_period(day="2026-01-06", timezone="UTC")
    assert _report(db, period=berlin, tz="Europe/Berlin").totals.calls == 2
    assert _report(db, period=utc).totals.calls == 2
    r = _report(db, by=("day",), tz="Europe/Berlin")
    assert {row.keys["day"]: row.calls for row in r.rows} == {"2026-01-06": 2, "2026-01-07": 1}


def test_dst_day_is_23_hours_and_reports_are_exact_across_it(db: sqlite_utils.Database) -> None:
    p = parse_period(day="2026-03-08", timezone="America/New_York")
    assert p.since is not None and p.until is not None
    assert p.until - p.since == dt.timedelta(hours=23)
    add(db, "2026-03-08T05:00")  # local midnight EST
    add(db, "2026-03-09T03:59")  # 23:59 EDT
    add(db, "2026-03-09T04:00")  # next local day
    assert _report(db, period=p, tz="America/New_York").totals.calls == 2


def test_budget_block_spent_reserved_remaining_and_projection(db: sqlite_utils.Database) -> None:
    add(db, "2026-01-10T01:00", units=5_000_000)  # $0.10 today
    add(db, "2026-01-10T02:00", units=10_000_000)  # $0.20 today
    add(db, "2026-01-09T23:59", units=50_000_000)  # yesterday: not today
    add(db, "2026-01-10T03:00", impl="mock", units=50_000_000)  # mock: never budget
    reserve(db, 50_000_000, now=NOW)
    reserve(db, 70_000_000, now=NOW - dt.timedelta(hours=1))  # expired: not held
    reserve(db, 90_000_000, now=NOW, status="settled")
    b = _report(db).budget
    assert b.daily_nusd == 1_000_000_000
    assert b.spent_today_nusd == 300_000_000
    assert b.reserved_nusd == 50_000_000
    assert b.remaining_nusd == 650_000_000
    assert b.percent_used == 30.0
    assert b.projected_nusd == 600_000_000  # half the day gone at 12:00 UTC
    data = report_to_dict(_report(db))["budget"]
    assert data["daily_usd"] == 1.0 and data["spent_today_usd"] == 0.3
    assert data["reserved_usd"] == 0.05 and data["remaining_usd"] == 0.65
    assert data["projected_end_of_day_usd"] == 0.6


def test_remaining_never_negative_and_zero_budget_has_no_percent(db: sqlite_utils.Database) -> None:
    add(db, "2026-01-10T01:00", units=100_000_000)  # $2
    r = build_report(db, period=ALL, now=NOW, daily_budget_usd=0.0)
    assert r.budget.remaining_nusd == 0 and r.budget.percent_used is None
    r = build_report(db, period=ALL, now=NOW, daily_budget_usd=1.0)
    assert r.budget.remaining_nusd == 0 and r.budget.percent_used == 200.0


def test_daily_series_covers_every_day_of_the_period(db: sqlite_utils.Database) -> None:
    _seed(db)
    r = _report(db, period=parse_period(timezone="UTC", now=NOW))  # default: last 7 days
    assert [p.day.isoformat() for p in r.daily] == [f"2026-01-{d:02d}" for d in range(4, 11)]
    series = {p.day.isoformat(): (p.calls, p.spent_nusd, p.not_spent_nusd) for p in r.daily}
    assert series["2026-01-05"] == (0, 0, 0)
    assert series["2026-01-09"] == (2, 0, 80_000_000)
    assert series["2026-01-10"] == (4, 82_500_000, 0)


def test_json_shape_rows_and_budget_keys(db: sqlite_utils.Database) -> None:
    _seed(db)
    data = report_to_dict(_report(db, by=("service", "mode")))
    assert {"rows", "budget", "totals", "daily", "period", "by"} <= set(data)
    for row in data["rows"]:
        assert {"service", "mode", "calls", "spent_usd", "would_cost_usd"} <= set(row)
    assert {"daily_usd", "spent_today_usd", "reserved_usd", "remaining_usd"} <= set(data["budget"])
    assert "total" not in {r.get("service") for r in data["rows"]}


def test_unknown_group_name_is_a_config_error(db: sqlite_utils.Database) -> None:
    with pytest.raises(ConfigError, match="--by: unknown group 'colour'"):
        _report(db, by=("colour",))


@pytest.mark.parametrize(
    ("kwargs", "since", "until"),
    [
        ({"day": "2026-01-06"}, "2026-01-06T00:00", "2026-01-07T00:00"),
        ({"since": "2026-01-01", "until": "2026-01-31"}, "2026-01-01T00:00", "2026-02-01T00:00"),
        ({"since": "2026-01-01T10:00", "until": "2026-01-01T12:00"}, "2026-01-01T10:00", "2026-01-01T12:00"),
        ({"since": "2026-01-01T10:00+02:00"}, "2026-01-01T08:00", None),
        ({"since": "36h"}, "2026-01-09T00:00", None),
        ({"until": "2026-01-02"}, None, "2026-01-03T00:00"),
    ],
)
def test_parse_period(kwargs: dict[str, str], since: str | None, until: str | None) -> None:
    p = parse_period(timezone="UTC", now=NOW, **kwargs)
    assert p.since == (at(since) if since else None)
    assert p.until == (at(until) if until else None)


def test_parse_period_in_zone_and_errors() -> None:
    p = parse_period(since="2026-01-01", timezone="Asia/Kolkata")
    assert p.since == at("2025-12-31T18:30")
    with pytest.raises(ConfigError, match="--until must be after --since"):
        parse_period(since="2026-01-05", until="2026-01-04T00:00")
    with pytest.raises(ConfigError, match="--since: 'yesterday' is not a date"):
        parse_period(since="yesterday")
    with pytest.raises(ConfigError, match="--day cannot be combined"):
        parse_period(day="2026-01-01", since="2026-01-01")


def test_parse_duration() -> None:
    assert parse_duration("90d") == dt.timedelta(days=90)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("2w") == dt.timedelta(days=14)
    for bad in ("", "90", "d", "1y", "0h", "5d3"):
        with pytest.raises(ConfigError, match="duration|longer than zero"):
            parse_duration(bad)
