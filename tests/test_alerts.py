"""Alerts in the ledger: thresholds fire once per window, error rates, mute, acknowledge, concurrency."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from typing import Any

import pytest

from tests.engines import open_target
from tests.ledger_rows import add, at, reserve
from tvdb.alerts.channels import Channel
from tvdb.alerts.delivery import deliver_alerts
from tvdb.clock import FakeClock
from tvdb.config import Settings
from tvdb.ledger.alerts import (
    Alert,
    Severity,
    acknowledge,
    evaluate_alerts,
    format_alert,
    list_alerts,
    mute,
    muted_until,
    unmute,
)
from tvdb.storage import Database

START = at("2026-01-10T06:00")


def settings(**alerts: Any) -> Settings:
    return Settings.model_validate({"daily_budget_usd": 1.0, "alerts": alerts})


@pytest.fixture
def db(any_db: Database) -> Database:
    """The ledger on each engine in turn (tests/conftest.py: any_db)."""
    return any_db


def spend(db: Database, ts: dt.datetime, usd: float, impl: str = "real") -> None:
    add(db, ts, units=round(usd * 50_000_000), impl=impl)  # $0.02 per 1M tokens


def test_budget_thresholds_fire_once_per_threshold_per_day(db: Database) -> None:
    clock = FakeClock(START)
    s = settings()
    spend(db, START, 0.49)
    assert evaluate_alerts(db, s, clock) == []
    spend(db, START, 0.02)  # 51 %
    first = evaluate_alerts(db, s, clock)
    assert [(a.kind, a.severity, a.details["threshold_pct"]) for a in first] == [
        ("budget", Severity.INFO, 50.0)
    ]
    assert first[0].key == "budget:2026-01-10T00:00:00.000000Z:50"
    assert "spent $0.51 of the $1.00 daily budget (51.0%)" in first[0].message
    assert evaluate_alerts(db, s, clock) == []  # same window: not again
    spend(db, START, 0.30)  # 81 %
    assert [a.severity for a in evaluate_alerts(db, s, clock)] == [Severity.WARNING]
    spend(db, START, 0.20)  # 101 %
    crit = evaluate_alerts(db, s, clock)
    assert [(a.severity, a.title) for a in crit] == [(Severity.CRITICAL, "Daily budget 100% used")]
    assert evaluate_alerts(db, s, clock) == []
    clock.advance(86_400)  # next day, new window
    spend(db, clock.now(), 0.60)
    assert [a.details["threshold_pct"] for a in evaluate_alerts(db, s, clock)] == [50.0]
    assert len(list_alerts(db)) == 4


def test_a_jump_raises_every_crossed_threshold_and_mock_spend_never_counts(db: Database) -> None:
    clock = FakeClock(START)
    spend(db, START, 5.0, impl="mock")
    spend(db, START, 5.0, impl="replay")
    assert evaluate_alerts(db, settings(), clock) == []
    spend(db, START, 1.0)
    reserve(db, 10_000_000, now=START)
    alerts = evaluate_alerts(db, settings(), clock)
    assert [a.severity for a in alerts] == [Severity.INFO, Severity.WARNING, Severity.CRITICAL]
    assert alerts[2].details["reserved_usd"] == 0.01


def test_alerts_print_and_list_by_threshold_and_time_even_with_a_refusal(db: Database) -> None:
    # the refusal's 100 % alert is built first; it used to be stored and printed before 50 % and 80 %
    clock = FakeClock(START)
    spend(db, START, 0.99)
    refusal = "daily 2026-01-10 (UTC) budget $1.00 would be exceeded: spent $0.99, reserved $0, requested $0.02"
    new = evaluate_alerts(db, settings(), clock, refusals=[refusal])
    assert [(a.details["threshold_pct"], a.title) for a in new] == [
        (50.0, "Daily budget 50% used"), (80.0, "Daily budget 80% used"),
        (100.0, "Budget reached: calls were refused")]
    assert [a.alert_id for a in new] == sorted(a.alert_id for a in new)
    assert [a.details["threshold_pct"] for a in list_alerts(db)] == [100.0, 80.0, 50.0]  # newest first
    later = FakeClock(START + dt.timedelta(days=1))
    spend(db, later.now(), 0.6)
    evaluate_alerts(db, settings(), later)
    back = FakeClock(START - dt.timedelta(days=1))  # raised after, yet about an earlier day: listed after it
    spend(db, back.now(), 0.6)
    evaluate_alerts(db, settings(), back)
    assert [(a.created_at.date().isoformat(), a.details["threshold_pct"]) for a in list_alerts(db)] == [
        ("2026-01-11", 50.0), ("2026-01-10", 100.0), ("2026-01-10", 80.0), ("2026-01-10", 50.0),
        ("2026-01-09", 50.0)]


def test_custom_thresholds_and_time_zone_window(db: Database) -> None:
    s = Settings.model_validate(
        {"daily_budget_usd": 1.0, "timezone": "Europe/Berlin", "alerts": {"thresholds_pct": [25, 90]}}
    )
    spend(db, at("2026-01-09T23:30"), 0.3)  # 00:30 on the 10th in Berlin
    alerts = evaluate_alerts(db, s, FakeClock(at("2026-01-10T01:00")))
    assert [a.details["threshold_pct"] for a in alerts] == [25.0]
    assert alerts[0].key == "budget:2026-01-09T23:00:00.000000Z:25"
    assert alerts[0].window_label == "daily 2026-01-10 (Europe/Berlin)"


def test_error_rate_per_service_over_its_window(db: Database) -> None:
    s = settings(error_rate_threshold=0.25, error_rate_min_calls=8, error_rate_window_s=3600)
    clock = FakeClock(START)
    for i in range(6):
        add(db, START - dt.timedelta(minutes=i), units=10)
    add(db, START - dt.timedelta(minutes=7), status="error")
    add(db, START - dt.timedelta(minutes=8), status="error")  # 2 of 8 = 25 %
    add(db, START - dt.timedelta(minutes=90), status="error")  # outside the window
    for _ in range(20):
        add(db, START, status="error", impl="mock")  # planned mock faults are not incidents
    alerts = evaluate_alerts(db, s, clock)
    assert [(a.kind, a.details["service"], a.details["calls"], a.details["errors"]) for a in alerts] == [
        ("error_rate", "openai", 8, 2)
    ]
    assert alerts[0].severity is Severity.WARNING
    assert "2 of 8 real calls to openai failed" in alerts[0].message
    clock.advance(600)
    add(db, clock.now(), status="error")
    assert evaluate_alerts(db, s, clock) == []  # same window bucket
    clock.advance(3600)
    for _ in range(8):
        add(db, clock.now(), status="error")
    assert len(evaluate_alerts(db, s, clock)) == 1  # next window


def test_a_scenarios_deliberate_faults_raise_no_error_rate_alert(db: Database) -> None:
    # a scenario that injects a 429 to test retries does its job; an alert on every CI run of it would
    # teach people to ignore the alert. Errors of a run without a fault plan still count.
    import json

    faults = [{"service": "openai", "kind": "status", "status": 429, "nth": 1}]
    for run_id, plan in (("faulty", faults), ("plain", [])):
        db.execute("INSERT INTO runs (run_id, scenario, spec_json) VALUES (?, ?, ?)",
                   [run_id, run_id, json.dumps({"scenario": {"faults": plan}})])
    s = settings(error_rate_threshold=0.25, error_rate_min_calls=4, error_rate_window_s=3600)
    for i in range(4):
        add(db, START - dt.timedelta(minutes=i), status="error", run_id="faulty")
    assert evaluate_alerts(db, s, FakeClock(START)) == []
    for i in range(4):
        add(db, START - dt.timedelta(minutes=i), status="error", run_id="plain")
    alerts = evaluate_alerts(db, s, FakeClock(START))
    assert [(a.kind, a.details["calls"], a.details["errors"]) for a in alerts] == [("error_rate", 4, 4)]


def test_error_rate_needs_min_calls(db: Database) -> None:
    for _ in range(4):
        add(db, START, status="error", service="llamaparse", model="fast")
    assert evaluate_alerts(db, settings(error_rate_min_calls=5), FakeClock(START)) == []
    mock_too = evaluate_alerts(
        db, settings(error_rate_min_calls=4), FakeClock(START), error_rate_implementations=("real", "mock")
    )
    assert [a.details["service"] for a in mock_too] == ["llamaparse"]


def test_mute_stores_but_suppresses_delivery_until_it_ends(db: Database) -> None:
    clock = FakeClock(START)
    sent: list[Alert] = []
    channel = Channel("webhook", "test sink", sent.append)
    until = mute(db, now=START, duration=dt.timedelta(hours=2), reason="load test")
    assert until == START + dt.timedelta(hours=2) and muted_until(db, START) == until
    spend(db, START, 0.6)
    muted = evaluate_alerts(db, settings(), clock)
    assert [(a.muted, a.delivery_status) for a in muted] == [(True, "muted")]
    results = deliver_alerts(muted, settings(), db=db, clock=clock, channels=[channel])
    assert [r.status for r in results] == ["muted"] and sent == []
    clock.advance(2 * 3600)  # mute window over
    assert muted_until(db, clock.now()) is None
    spend(db, clock.now(), 0.3)
    loud = evaluate_alerts(db, settings(), clock)
    assert [a.muted for a in loud] == [False]
    assert [r.status for r in deliver_alerts(loud, settings(), db=db, clock=clock, channels=[channel])] == [
        "delivered"
    ]
    assert [a.alert_id for a in sent] == [loud[0].alert_id]
    statuses = {a.alert_id: a.delivery_status for a in list_alerts(db)}
    assert statuses == {muted[0].alert_id: "muted", loud[0].alert_id: "delivered"}


def test_unmute_ends_the_window_and_an_open_mute_blocks_earlier_alerts(db: Database) -> None:
    clock = FakeClock(START)
    sent: list[Alert] = []
    spend(db, START, 0.6)
    alerts = evaluate_alerts(db, settings(), clock)
    mute(db, now=START, duration=dt.timedelta(minutes=30))
    channel = Channel("webhook", "sink", sent.append)
    assert [r.status for r in deliver_alerts(alerts, settings(), db=db, clock=clock, channels=[channel])] == [
        "muted"
    ]
    assert unmute(db, now=START) == 1 and unmute(db, now=START) == 0
    deliver_alerts(alerts, settings(), db=db, clock=clock, channels=[channel])
    assert len(sent) == 1


def test_acknowledge_by_id_and_all(db: Database) -> None:
    spend(db, START, 1.0)
    a, b, c = evaluate_alerts(db, settings(), FakeClock(START))
    assert acknowledge(db, [b.alert_id, 999], now=START) == [b.alert_id]
    assert [x.alert_id for x in list_alerts(db)] == [c.alert_id, a.alert_id]
    assert acknowledge(db, None, now=START) == [a.alert_id, c.alert_id]
    assert list_alerts(db) == []
    everything = list_alerts(db, include_acknowledged=True)
    assert len(everything) == 3 and all(x.acknowledged_at == START for x in everything)
    assert format_alert(c).startswith(f"[critical] #{c.alert_id} Daily budget 100% used: spent $1.00 of")


def _evaluate_in_process(target: str, now: str, barrier: Any, queue: Any) -> None:
    db = open_target(target)
    barrier.wait()
    new = evaluate_alerts(db, settings(), FakeClock(dt.datetime.fromisoformat(now)))
    queue.put([a.key for a in new])


def test_concurrent_evaluations_raise_each_alert_once(db: Database, db_target: str) -> None:
    spend(db, START, 1.0)
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(
            target=_evaluate_in_process, args=(db_target, START.isoformat(), barrier, queue)
        )
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    keys = [k for _ in procs for k in queue.get(timeout=30)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(keys) == sorted(f"budget:2026-01-10T00:00:00.000000Z:{t}" for t in (50, 80, 100))
    assert db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 3


def test_a_run_budget_refusal_does_not_use_up_the_days_budget_alert(db: Database) -> None:
    """A run refused by its own `budget.max_usd` raises that run's alert; the daily budget refusing
    calls later the same day still raises the day's critical 100 % alert (the two keys differ)."""
    clock = FakeClock(START)
    run_refusal = ("run 20260110-060000-aaaaaa budget $0.000001 would be exceeded: spent $0, reserved $0, "
                   "requested $0.00000392")
    first = evaluate_alerts(db, settings(), clock, refusals=[run_refusal])
    assert [(a.key, a.severity, a.title) for a in first] == [
        ("run_budget:20260110-060000-aaaaaa", Severity.CRITICAL, "Run budget reached: calls were refused")]
    assert first[0].details["run_id"] == "20260110-060000-aaaaaa" and first[0].message == run_refusal
    spend(db, START, 0.5)
    clock.advance(3600)
    daily = ("daily 2026-01-10 (UTC) budget $1.00 would be exceeded: spent $0.50, reserved $0, "
             "requested $0.60")
    second = evaluate_alerts(db, settings(), clock, refusals=[daily])
    assert [a.key for a in second] == ["budget:2026-01-10T00:00:00.000000Z:50",
                                     "budget:2026-01-10T00:00:00.000000Z:100"]  # by threshold
    assert second[1].title == "Budget reached: calls were refused" and second[1].severity is Severity.CRITICAL
    assert evaluate_alerts(db, settings(), clock, refusals=[run_refusal, daily]) == []  # each raised once
