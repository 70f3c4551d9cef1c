"""Cost reports: exact sums in nano-USD, grouping, filters, unknown prices, day/zone edges, budget block."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.ledger_rows import NUSD_PER_1M_TOKENS, NUSD_PER_FAST_PAGE, add, at, reserve
from tvdb.errors import ConfigError
from tvdb.ledger.periods import Period, parse_duration, parse_period
from tvdb.ledger.reports import ReportFilters, build_report, report_to_dict
from tvdb.storage import Database

NOW = at("2026-01-10T12:00")
ALL = Period(None, None)


@pytest.fixture
def db(any_db: Database) -> Database:
    """The ledger on each engine in turn (tests/conftest.py: any_db)."""
    return any_db


def _report(
    db: Database,
    by: tuple[str, ...] = ("service",),
    period: Period = ALL,
    tz: str = "UTC",
    **filters: tuple[str, ...],
):  # type: ignore[no-untyped-def]
    return build_report(
        db, period=period, now=NOW, daily_budget_usd=1.0, timezone=tz, by=by, filters=ReportFilters(**filters)
    )


def _seed(db: Database) -> None:
    add(db, "2026-01-10T08:00", units=1_000_000)  # real openai $0.02
    add(db, "2026-01-10T09:00", units=2_500_000)  # real openai $0.05
    add(db, "2026-01-09T09:00", impl="mock", units=1_000_000)  # mock: would $0.02, spent 0
    add(db, "2026-01-09T10:00", impl="replay", units=3_000_000)  # replay: would $0.06
    add(db, "2026-01-10T10:00", service="llamaparse", model="fast", units=10, run_id="run-2")  # $0.0125
    add(db, "2026-01-10T10:30", status="error")  # failed attempt: $0


def test_groups_by_service_with_exact_sums_and_separate_mock_replay_values(db: Database) -> None:
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


def test_several_group_keys_and_mode_names_the_implementation(db: Database) -> None:
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


def test_group_by_run_scenario_and_model(db: Database) -> None:
    _seed(db)
    r = _report(db, by=("run", "scenario", "model"))
    keys = {tuple(row.keys.values()) for row in r.rows}
    assert ("run-2", "quick", "fast") in keys and ("run-1", "quick", "text-embedding-3-small") in keys


def test_filters_select_rows(db: Database) -> None:
    _seed(db)
    assert _report(db, services=("llamaparse",)).totals.calls == 1
    assert _report(db, implementations=("mock", "replay")).totals.spent.nusd == 0
    assert _report(db, implementations=("mock", "replay")).totals.would_cost.nusd == 80_000_000
    assert _report(db, runs=("run-2",)).totals.spent.nusd == 12_500_000
    assert _report(db, models=("nope",)).rows == ()
    assert _report(db, scenarios=("quick",)).totals.calls == 6


def test_unknown_prices_are_unknown_never_zero(db: Database) -> None:
    add(db, "2026-01-10T08:00", model="text-embedding-9-mystery")
    add(db, "2026-01-10T08:05", model="text-embedding-9-mystery", impl="mock")
    add(db, "2026-01-10T08:10")
    r = _report(db, by=("model",))
    mystery = next(row for row in r.rows if row.keys["model"] == "text-embedding-9-mystery")
    assert mystery.spent_usd is None and mystery.would_cost_usd is None
    assert mystery.unknown_price_calls == 2
    assert r.totals.spent.nusd == NUSD_PER_1M_TOKENS and r.totals.spent.unknown == 1
    assert r.totals.spent_usd is None  # a partial sum is not the total…
    assert r.totals.spent.known_usd == 0.02  # …it is given as the known part
    data = report_to_dict(r)
    row = next(x for x in data["rows"] if x["model"] == "text-embedding-9-mystery")
    assert row["spent_usd"] is None and row["unknown_price_calls"] == 2
    assert row["would_cost_usd"] is None and row["would_cost_nusd"] is None  # not 0
    assert data["budget"]["unknown_price_calls_today"] == 1


def test_totals_with_unpriced_calls_give_the_known_sum_under_its_own_name(db: Database) -> None:
    add(db, "2026-01-10T08:00", model="text-embedding-9-mystery")  # real, no price
    add(db, "2026-01-10T08:05", model="text-embedding-9-mystery", impl="mock")  # mock, no price
    add(db, "2026-01-10T08:10")  # real $0.02
    add(db, "2026-01-10T08:20", impl="mock", units=3_000_000)  # mock: would $0.06
    data = report_to_dict(_report(db, by=("service",), period=parse_period(timezone="UTC", now=NOW)))
    (row,) = data["rows"]
    for group in (row, data["totals"]):  # one group holding priced and unpriced calls, and the totals
        assert group["calls"] == 4
        assert group["spent_usd"] is None and group["spent_nusd"] is None
        assert group["spent_known_usd"] == 0.02 and group["spent_known_nusd"] == NUSD_PER_1M_TOKENS
        assert group["would_cost_usd"] is None and group["would_cost_nusd"] is None
        assert group["would_cost_known_usd"] == 0.08 and group["would_cost_known_nusd"] == 4 * NUSD_PER_1M_TOKENS
        assert group["mock_would_cost_usd"] is None and group["mock_would_cost_known_usd"] == 0.06
        assert group["replay_would_cost_usd"] == 0.0  # no replay calls at all: exactly $0
        assert group["unknown_price_calls"] == 2 and group["unknown_price_real_calls"] == 1
    today = data["daily"][-1]
    assert today == {
        "day": "2026-01-10", "calls": 4, "spent_usd": None, "not_spent_usd": None, "unknown_price_calls": 2,
        "spent_known_usd": 0.02, "not_spent_known_usd": 0.06,
    }
    assert data["daily"][0]["spent_usd"] == 0.0 and data["daily"][0]["unknown_price_calls"] == 0


def test_a_full_figure_and_its_nano_twin_are_null_together(db: Database) -> None:
    _seed(db)
    add(db, "2026-01-10T11:00", model="text-embedding-9-mystery")
    data = report_to_dict(_report(db, by=("model", "mode")))
    for group in [*data["rows"], data["totals"]]:
        for name in ("spent", "would_cost"):
            full, nano, known = group[f"{name}_usd"], group[f"{name}_nusd"], group[f"{name}_known_nusd"]
            assert (full is None) == (nano is None)
            assert nano is None or (nano == known and full == known / 1e9)
        assert (group["would_cost_usd"] is None) == (group["unknown_price_calls"] > 0)


def test_day_edges_follow_the_configured_time_zone(db: Database) -> None:
    add(db, "2026-01-05T23:30")  # 2026-01-06 00:30 in Berlin
    add(db, "2026-01-06T22:59")  # 2026-01-06 23:59 in Berlin
    add(db, "2026-01-06T23:00")  # 2026-01-07 00:00 in Berlin
    berlin = parse_period(day="2026-01-06", timezone="Europe/Berlin")
    utc = parse_period(day="2026-01-06", timezone="UTC")
    assert _report(db, period=berlin, tz="Europe/Berlin").totals.calls == 2
    assert _report(db, period=utc).totals.calls == 2
    r = _report(db, by=("day",), tz="Europe/Berlin")
    assert {row.keys["day"]: row.calls for row in r.rows} == {"2026-01-06": 2, "2026-01-07": 1}


def test_dst_day_is_23_hours_and_reports_are_exact_across_it(db: Database) -> None:
    p = parse_period(day="2026-03-08", timezone="America/New_York")
    assert p.since is not None and p.until is not None
    assert p.until - p.since == dt.timedelta(hours=23)
    add(db, "2026-03-08T05:00")  # local midnight EST
    add(db, "2026-03-09T03:59")  # 23:59 EDT
    add(db, "2026-03-09T04:00")  # next local day
    assert _report(db, period=p, tz="America/New_York").totals.calls == 2


def test_budget_block_spent_reserved_remaining_and_projection(db: Database) -> None:
    add(db, "2026-01-10T01:00", units=5_000_000)  # $0.10 today
    add(db, "2026-01-10T02:00", units=10_000_000)  # $0.20 today
    add(db, "2026-01-09T23:59", units=50_000_000)  # yesterday: not today
    add(db, "2026-01-10T03:00", impl="mock", units=50_000_000)  # mock: never budget
    reserve(db, 50_000_000, now=NOW)
    # past its lease, but active: held until the next reservation sweeps it into assumed spend
    reserve(db, 20_000_000, now=NOW - dt.timedelta(hours=1))
    reserve(db, 90_000_000, now=NOW, status="settled")
    reserve(db, 40_000_000, now=NOW, status="released")
    b = _report(db).budget
    assert b.daily_nusd == 1_000_000_000
    assert b.spent_today_nusd == 300_000_000
    assert b.reserved_nusd == 70_000_000
    assert b.remaining_nusd == 630_000_000
    assert b.percent_used == 30.0
    assert b.projected_nusd == 600_000_000  # half the day gone at 12:00 UTC
    data = report_to_dict(_report(db))["budget"]
    assert data["daily_usd"] == 1.0 and data["spent_today_usd"] == 0.3
    assert data["reserved_usd"] == 0.07 and data["remaining_usd"] == 0.63
    assert data["projected_end_of_day_usd"] == 0.6


def test_remaining_never_negative_and_zero_budget_has_no_percent(db: Database) -> None:
    add(db, "2026-01-10T01:00", units=100_000_000)  # $2
    r = build_report(db, period=ALL, now=NOW, daily_budget_usd=0.0)
    assert r.budget.remaining_nusd == 0 and r.budget.percent_used is None
    r = build_report(db, period=ALL, now=NOW, daily_budget_usd=1.0)
    assert r.budget.remaining_nusd == 0 and r.budget.percent_used == 200.0


def test_daily_series_covers_every_day_of_the_period(db: Database) -> None:
    _seed(db)
    r = _report(db, period=parse_period(timezone="UTC", now=NOW))  # default: last 7 days
    assert [p.day.isoformat() for p in r.daily] == [f"2026-01-{d:02d}" for d in range(4, 11)]
    series = {p.day.isoformat(): (p.calls, p.spent_nusd, p.not_spent_nusd) for p in r.daily}
    assert series["2026-01-05"] == (0, 0, 0)
    assert series["2026-01-09"] == (2, 0, 80_000_000)
    assert series["2026-01-10"] == (4, 82_500_000, 0)


def test_json_shape_rows_and_budget_keys(db: Database) -> None:
    _seed(db)
    data = report_to_dict(_report(db, by=("service", "mode")))
    assert {"rows", "budget", "totals", "daily", "period", "by"} <= set(data)
    for row in data["rows"]:
        assert {"service", "mode", "calls", "spent_usd", "would_cost_usd"} <= set(row)
    assert {"daily_usd", "spent_today_usd", "reserved_usd", "remaining_usd"} <= set(data["budget"])
    assert "total" not in {r.get("service") for r in data["rows"]}


def test_unknown_group_name_is_a_config_error(db: Database) -> None:
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


@pytest.mark.parametrize("text", ["99999999d", "36501d", "1" + "0" * 400 + "s", "5300w1d"])
def test_a_duration_too_long_is_a_config_error_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--for: '{text}' is too long \(at most 36500d"):
        parse_duration(text, what="--for")
    assert parse_duration("36500d", what="--for") == dt.timedelta(days=36_500)


@pytest.mark.parametrize(
    ("kwargs", "option", "value"),
    [
        ({"since": "99999999d"}, "--since", "99999999d"),
        ({"since": "0001-01-01"}, "--since", "0001-01-01"),
        ({"since": "0001-01-01T00:00+05:00"}, "--since", "0001-01-01T00:00+05:00"),
        ({"until": "9999-12-31"}, "--until", "9999-12-31"),
        ({"day": "9999-12-31"}, "--day", "9999-12-31"),
        ({"day": "0001-01-01"}, "--day", "0001-01-01"),
    ],
)
def test_periods_past_the_calendar_are_config_errors(kwargs: dict[str, str], option: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_period(timezone="Asia/Kolkata", now=NOW, **kwargs)
    assert str(info.value).startswith(f"{option}: '{value}' is ")


def test_relative_since_and_default_period_near_the_ends_of_the_calendar() -> None:
    with pytest.raises(ConfigError, match=r"^--since: '30d' is out of range"):
        parse_period(since="30d", now=at("0001-01-20T00:00"))
    with pytest.raises(ConfigError, match=r"^--now: '9999-12-31T12:00:00\+00:00' is out of range"):
        parse_period(now=at("9999-12-31T12:00"))
    p = parse_period(since="2026-01-01", until="9999-12-27", timezone="Pacific/Kiritimati")
    assert p.until is not None and p.until.year == 9999
