"""LedgerBudget: reservations before the call, day and hour windows, expiry, C08 and C09."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tvdb.clock import FakeClock
from tvdb.config import BudgetSettings, LimitsSettings, Settings
from tvdb.db import open_db
from tvdb.domain import Implementation
from tvdb.errors import CostLimitExceeded, PriceUnknownError, RateLimitExceeded, ServiceUnavailableError
from tvdb.ledger.budget import LedgerBudget
from tvdb.ledger.guard import CallScope, Reservation, SpendRequest
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage
from tvdb.services.calls import CallSpec, Completed, ServiceCaller
from tvdb.services.factory import budget_settings
from tvdb.storage import Database, transaction

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(any_db: Database) -> Database:
    """The ledger on each engine in turn (tests/conftest.py: any_db)."""
    return any_db


def settings(**kwargs: Any) -> Settings:
    return Settings.model_validate(kwargs)


def count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def request(nusd: int | None, *, run_id: str | None = "r1", service: str = "openai",
            run_budget_usd: float | None = None, stage: str = "embed") -> SpendRequest:
    scope = CallScope(run_id=run_id, scenario="s", stage=stage, job_ids=("j1",))
    return SpendRequest(service, "text-embedding-3-small", 1000, "tokens", nusd, scope, run_budget_usd)


def spend(db: Database, ts: dt.datetime, nusd: int, *, run_id: str = "r0",
          implementation: Implementation = Implementation.REAL, service: str = "openai",
          status: str = "ok") -> None:
    cost = nusd if implementation is Implementation.REAL else 0
    insert_usage(db, UsageRow(ts=ts, run_id=run_id, stage="embed", service=service,
                              implementation=implementation, model="text-embedding-3-small", units=1,
                              unit="tokens", pricing=Pricing(cost, nusd, "v"), status=status))


def statuses(db: Database) -> list[tuple[str, int | None]]:
    """(status, settled nano-USD) of every reservation, sorted (engines keep no common insertion order)."""
    rows = db.execute("SELECT status, settled_nusd FROM reservations").fetchall()
    return sorted(((r[0], r[1]) for r in rows), key=lambda r: (r[0], r[1] or 0))


def daily(guard: LedgerBudget) -> tuple[int, int]:
    check = next(c for c in guard.forecast([]).checks if c.name == "daily")
    return check.used, check.reserved


def test_reserve_settle_release_arithmetic(db: Database) -> None:
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=0.001)), FakeClock(T0))  # 1,000,000 nUSD
    a = guard.reserve(request(300_000))
    b = guard.reserve(request(500_000))
    assert daily(guard) == (0, 800_000)
    with pytest.raises(CostLimitExceeded) as refused:
        guard.reserve(request(300_000))
    e = refused.value
    assert (e.spent, e.reserved, e.limit, e.requested) == (0.0, 0.0008, 0.001, 0.0003)
    assert e.window == "daily 2026-11-29 (UTC)"
    assert str(e) == ("daily 2026-11-29 (UTC) budget $0.001 would be exceeded: spent $0, reserved $0.0008, "
                      "requested $0.0003; to allow it, raise daily_budget_usd (tvdb.yaml, or TVDB_DAILY_BUDGET_USD) "
                      "to at least $0.0011, or wait for the next day (on_budget_exceeded: defer parks the document "
                      "until then)")
    with transaction(db):  # what Completed.commit does: usage row + settle, one transaction
        spend(db, T0, 250_000, run_id="r1")
        guard.settle(a, 250_000)
    assert daily(guard) == (250_000, 500_000)
    with pytest.raises(CostLimitExceeded):
        guard.reserve(request(300_000))  # 250k + 500k + 300k > 1M
    with transaction(db):
        guard.release(b)
    assert daily(guard) == (250_000, 0)
    guard.reserve(request(300_000))
    guard.reserve(request(450_000))  # exactly at the limit: admitted
    with pytest.raises(CostLimitExceeded):
        guard.reserve(request(1))
    assert statuses(db) == [("active", None), ("active", None), ("released", None), ("settled", 250_000)]
    # settling or releasing twice changes nothing
    guard.release(a)
    assert statuses(db)[3] == ("settled", 250_000)


def test_reservation_without_id_is_ignored(db: Database) -> None:
    guard = LedgerBudget(db, budget_settings(settings()), FakeClock(T0))
    guard.settle(Reservation(None, request(5)), 5)
    guard.release(Reservation(None, request(5)))
    assert statuses(db) == []


def test_mock_and_replay_never_count(db: Database) -> None:
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=0.0001)), FakeClock(T0))
    spend(db, T0, 10**9, implementation=Implementation.MOCK)
    spend(db, T0, 10**9, implementation=Implementation.REPLAY)
    assert daily(guard) == (0, 0)
    guard.reserve(request(100_000))


@pytest.mark.parametrize(
    ("timezone", "last_instant", "next_start", "day", "hours"),
    [
        ("UTC", "2026-11-29T23:59:59.999+00:00", "2026-11-30T00:00:00+00:00", "2026-11-29", 24),
        # spring forward: 2026-03-29 in Berlin has 23 hours (CET → CEST)
        ("Europe/Berlin", "2026-03-29T21:59:59.999+00:00", "2026-03-29T22:00:00+00:00", "2026-03-29", 23),
        ("Europe/Berlin", "2026-03-28T22:59:59.999+00:00", "2026-03-28T23:00:00+00:00", "2026-03-28", 24),
        # fall back: 2026-11-01 in New York has 25 hours (EDT → EST)
        ("America/New_York", "2026-11-02T04:59:59.999+00:00", "2026-11-02T05:00:00+00:00", "2026-11-01", 25),
    ],
)
def test_day_window_edges(db: Database, timezone: str, last_instant: str, next_start: str,
                          day: str, hours: int) -> None:
    last, nxt = dt.datetime.fromisoformat(last_instant), dt.datetime.fromisoformat(next_start)
    day_start = nxt - dt.timedelta(hours=hours)
    clock = FakeClock(last)
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=0.0001, timezone=timezone)), clock)
    spend(db, day_start - dt.timedelta(microseconds=1), 100_000)  # the previous day: not counted
    spend(db, day_start, 60_000)  # the first instant of the day
    spend(db, last, 40_000)  # the last instant of the day
    assert daily(guard) == (100_000, 0)
    with pytest.raises(CostLimitExceeded) as refused:
        guard.reserve(request(1))
    assert refused.value.window == f"daily {day} ({timezone})"
    assert guard.deferred_until(refused.value) == nxt
    clock.advance(0.001)  # now exactly the next local midnight: a fresh day
    assert clock.now() == nxt
    guard.reserve(request(100_000))
    with pytest.raises(CostLimitExceeded) as again:
        guard.reserve(request(1))
    assert again.value.window.startswith("daily ") and day not in again.value.window


def test_reservation_open_across_midnight_counts_in_the_new_day(db: Database) -> None:
    clock = FakeClock(dt.datetime(2026, 11, 29, 23, 59, 59, 999_000, tzinfo=UTC))
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=0.0001)), clock)
    held = guard.reserve(request(100_000))
    clock.advance(0.001)
    with pytest.raises(CostLimitExceeded) as refused:  # still in flight: it may yet spend
        guard.reserve(request(1))
    assert refused.value.reserved == 0.0001 and refused.value.window == "daily 2026-11-30 (UTC)"
    with transaction(db):
        spend(db, dt.datetime(2026, 11, 29, 23, 59, 59, 999_000, tzinfo=UTC), 100_000)
        guard.settle(held, 100_000)
    guard.reserve(request(100_000))  # the spend belongs to yesterday


def test_hourly_window_edges(db: Database) -> None:
    clock = FakeClock(T0)
    guard = LedgerBudget(db, budget_settings(settings(limits=LimitsSettings(openai_requests_per_hour=2))), clock)
    spend(db, T0, 10, status="error")  # failed attempts are requests too
    spend(db, T0 + dt.timedelta(seconds=10), 10)
    for _ in range(5):  # mock calls and other services never count
        spend(db, T0 + dt.timedelta(seconds=20), 10, implementation=Implementation.MOCK)
        spend(db, T0 + dt.timedelta(seconds=20), 10, service="llamaparse")
    clock.advance(100)
    with pytest.raises(RateLimitExceeded) as refused:
        guard.reserve(request(10))
    e = refused.value
    assert (e.limit, e.window, e.retry_after, e.service) == (2, "hour", 3500.0, "openai")
    assert str(e) == ("openai hourly request limit of 2 reached: 2 real requests in the last hour and 0 in flight; "
                      "a slot frees in 3500 s; to allow it, raise limits.openai_requests_per_hour (tvdb.yaml, or "
                      "TVDB_LIMITS_OPENAI_REQUESTS_PER_HOUR) to at least 3, or wait for a slot to free")
    assert guard.deferred_until(e) == T0 + dt.timedelta(seconds=3600)
    clock.advance(3499.999)  # 1 ms before the first attempt leaves the window
    with pytest.raises(RateLimitExceeded):
        guard.reserve(request(10))
    clock.advance(0.001)
    first = guard.reserve(request(10))  # exactly one hour after the first attempt
    with pytest.raises(RateLimitExceeded) as again:
        guard.reserve(request(10))
    assert again.value.retry_after == 10.0  # the second attempt (T0+10 s) frees next
    with transaction(db):
        guard.release(first)
    guard.reserve(request(10))
    guard.reserve(request(10, service="llamaparse"))  # no limit configured for llamaparse


def test_hourly_limit_zero_never_frees(db: Database) -> None:
    limits = LimitsSettings(llamaparse_requests_per_hour=0)
    guard = LedgerBudget(db, budget_settings(settings(limits=limits)), FakeClock(T0))
    with pytest.raises(RateLimitExceeded) as refused:
        guard.reserve(request(10, service="llamaparse"))
    assert refused.value.retry_after is None and guard.deferred_until(refused.value) is None
    # no "or wait": a limit of 0 never frees a slot
    assert str(refused.value).endswith("raise limits.llamaparse_requests_per_hour (tvdb.yaml, or "
                                       "TVDB_LIMITS_LLAMAPARSE_REQUESTS_PER_HOUR) to at least 1")


def test_unknown_price_is_refused_not_free(db: Database) -> None:
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=100)), FakeClock(T0))
    with pytest.raises(PriceUnknownError) as refused:
        guard.reserve(request(None))
    assert refused.value.model == "text-embedding-3-small"
    assert statuses(db) == []
    forecast = guard.forecast([request(None), request(5)])
    assert forecast.unpriced == (("openai", "text-embedding-3-small"),)
    assert forecast.total_nusd == 5 and not forecast.fits


def dead_owner() -> dict[str, Any]:
    """The owner record of a process that has exited (and been reaped) on this host."""
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return {"pid": child.pid, "pid_started": None, "host": socket.gethostname()}


def test_a_dead_owners_reservation_is_assumed_spent_not_free_room(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    clock = FakeClock(T0)
    cfg = settings(daily_budget_usd=0.0002, reservation_ttl_s=600)
    crashed = open_db(path)
    LedgerBudget(crashed, budget_settings(cfg), clock, owner=dead_owner()).reserve(request(100_000))
    crashed.close()  # kill -9: the process dies without settling or releasing
    db = open_db(path)
    guard = LedgerBudget(db, budget_settings(cfg), clock)
    clock.advance(3 * 600)  # long past the lease: the money still counts
    assert daily(guard) == (0, 100_000)  # a read-only forecast shows it held until a sweep
    with pytest.raises(CostLimitExceeded) as refused:
        guard.reserve(request(100_001))
    assert (refused.value.spent, refused.value.reserved) == (0.0001, 0.0)
    assert statuses(db) == [("assumed", 100_000)]
    row = db.execute("SELECT ts, status, error_code, assumed, cost_nusd, units, stage, run_id "
                     "FROM usage").fetchall()
    assert row == [("2026-11-29T12:00:00.000000Z", "error", "owner_gone", 1, 100_000, 1000.0, "embed", "r1")]
    guard.reserve(request(100_000))  # exactly the rest of the budget
    db.close()


def test_a_live_owners_reservation_never_lapses(db: Database) -> None:
    """However long a live call takes (pacing, retries, a slow answer), its money stays held."""
    clock = FakeClock(T0)
    guard = LedgerBudget(db, budget_settings(settings(daily_budget_usd=0.0002, reservation_ttl_s=600)), clock)
    held = guard.reserve(request(100_000))
    clock.advance(10 * 600)
    with pytest.raises(CostLimitExceeded):
        guard.reserve(request(100_001))
    assert statuses(db) == [("active", None)]
    guard.settle(held, 90_000)
    assert statuses(db) == [("settled", 90_000)]


def test_another_hosts_reservation_is_assumed_once_its_lease_ends(db: Database) -> None:
    clock = FakeClock(T0)
    cfg = settings(daily_budget_usd=0.0002, reservation_ttl_s=600)
    remote = LedgerBudget(db, budget_settings(cfg), clock,
                          owner={"pid": 1, "pid_started": "1", "host": "elsewhere.invalid"})
    late = remote.reserve(request(100_000))
    guard = LedgerBudget(db, budget_settings(cfg), clock)
    clock.advance(599.999)
    assert guard.sweep() == 0
    clock.advance(0.001)
    assert guard.sweep() == 1
    assert daily(guard) == (100_000, 0)
    # the owner was only slow: its answer replaces the assumed row with what was billed
    late_row = UsageRow(ts=T0, run_id="r1", stage="embed", service="openai", implementation=Implementation.REAL,
                        model="text-embedding-3-small", units=900, unit="tokens", pricing=Pricing(90_000, 90_000, "v"),
                        reservation_id=late.reservation_id)
    Completed(None, late_row, late).commit(db, remote)
    assert statuses(db) == [("settled", 90_000)]
    assert db.execute("SELECT status, assumed, cost_nusd FROM usage").fetchall() == [("ok", 0, 90_000)]


def test_run_budget(db: Database) -> None:
    cfg = settings(daily_budget_usd=1, budget=BudgetSettings(max_usd=0.0001))
    guard = LedgerBudget(db, budget_settings(cfg), FakeClock(T0))
    spend(db, T0 - dt.timedelta(days=3), 60_000, run_id="r1")  # a run's budget has no day window
    with pytest.raises(CostLimitExceeded) as refused:
        guard.reserve(request(50_000, run_id="r1"))
    assert refused.value.window == "run r1" and refused.value.spent == 0.00006
    assert str(refused.value) == ("run r1 budget $0.0001 would be exceeded: spent $0.00006, reserved $0, requested "
                                  "$0.00005; to allow it, raise the run budget to at least $0.00011: --max-usd, or "
                                  "budget.max_usd in the scenario or tvdb.yaml")
    assert guard.deferred_until(refused.value) is None  # waiting never frees a run budget
    guard.reserve(request(50_000, run_id="r2"))
    guard.reserve(request(50_000, run_id="r1", run_budget_usd=0.00011))  # the scenario's value wins
    with pytest.raises(CostLimitExceeded) as daily_refused:
        guard.reserve(request(2 * 10**9, run_id="r3"))  # bigger than the daily budget itself
    assert guard.deferred_until(daily_refused.value) is None
    # no later day has room for it either, so the message does not suggest waiting
    assert str(daily_refused.value).endswith(
        "to allow it, raise daily_budget_usd (tvdb.yaml, or TVDB_DAILY_BUDGET_USD) to at least $2.0001")


def _state(db: Database) -> list[tuple[object, ...]]:
    """Everything the ledger holds (a read-only call must leave it as it was)."""
    return [tuple(r) for table in ("usage", "reservations", "usage_daily")
            for r in db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()]


def test_forecast_is_read_only_and_per_budget(db: Database) -> None:
    cfg = settings(daily_budget_usd=0.0001, budget=BudgetSettings(max_usd=0.00005),
                   limits=LimitsSettings(openai_requests_per_hour=2))
    guard = LedgerBudget(db, budget_settings(cfg), FakeClock(T0))
    spend(db, T0, 30_000)
    before = _state(db)
    reqs = [request(20_000, run_id=None, stage="parse", service="llamaparse"),
            request(25_000, run_id=None), request(25_000, run_id=None), request(25_000, run_id=None)]
    forecast = guard.forecast(reqs)
    assert _state(db) == before
    assert forecast.by_stage_nusd == {"parse": 20_000, "embed": 75_000}
    checks = {c.name: c for c in forecast.checks}
    assert (checks["daily"].used, checks["daily"].requested, checks["daily"].fits) == (30_000, 95_000, False)
    assert (checks["run"].window, checks["run"].requested, checks["run"].fits) == ("run (new)", 95_000, False)
    assert (checks["hourly openai"].used, checks["hourly openai"].requested) == (1, 3)
    assert "hourly llamaparse" not in checks
    assert checks["daily"].as_dict()["remaining_usd"] == 0.00007
    assert not forecast.fits and forecast.total_usd == 0.000095
    assert guard.forecast(reqs[:2]).fits


# -- through ServiceCaller: a refused call never reaches `send` --------------------------------


class FakeSend:
    def __init__(self, tokens: int, gate: asyncio.Event | None = None, fail: bool = False) -> None:
        self.calls = 0
        self.tokens, self.gate, self.fail = tokens, gate, fail

    async def __call__(self) -> dict[str, int]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ServiceUnavailableError("503", service="openai", status=503)
        return {"prompt_tokens": self.tokens}


def caller(db: Database, cfg: Settings, clock: FakeClock) -> tuple[ServiceCaller, LedgerBudget]:
    guard = LedgerBudget(db, budget_settings(cfg), clock)
    return ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, budget=guard), guard


def spec(send: FakeSend, tokens: int, model: str = "text-embedding-3-small",
         implementation: Implementation = Implementation.REAL) -> CallSpec[dict[str, int]]:
    return CallSpec(service="openai", implementation=implementation, model=model, unit="tokens",
                    estimate_units=tokens, send=send, actual_units=lambda v: v["prompt_tokens"],
                    usage_of=lambda v: v)


SCOPE = CallScope(run_id="r1", scenario="s", stage="embed", job_ids=("j1",))


async def test_c08_one_million_tokens_cost_two_cents(db: Database) -> None:
    svc, guard = caller(db, settings(daily_budget_usd=1), FakeClock(T0))
    send = FakeSend(1_000_000)
    done = await svc.call(SCOPE, spec(send, 1_000_000))
    done.commit(db, guard)
    row = db.execute("SELECT cost_usd, cost_nusd, would_cost_nusd, implementation FROM usage").fetchone()
    assert row == (0.02, 20_000_000, 20_000_000, "real")
    assert statuses(db) == [("settled", 20_000_000)]
    assert daily(guard) == (20_000_000, 0)


async def test_c08_unpriced_model_blocks_real_and_stores_null(db: Database) -> None:
    svc, guard = caller(db, settings(daily_budget_usd=100), FakeClock(T0))
    send = FakeSend(10)
    with pytest.raises(PriceUnknownError):
        await svc.call(SCOPE, spec(send, 10, model="text-embedding-9-unpriced"))
    assert send.calls == 0 and statuses(db) == [] and count(db, "usage") == 0
    mock = await svc.call(SCOPE, spec(send, 10, model="text-embedding-9-unpriced",
                                      implementation=Implementation.MOCK))
    mock.commit(db, guard)
    row = db.execute("SELECT cost_usd, would_cost_usd, cost_nusd FROM usage").fetchone()
    assert row == (None, None, None)
    assert statuses(db) == []  # mock calls never reach the guard


async def _in_flight(svc: ServiceCaller, n: int, send: FakeSend, tokens: int
                     ) -> tuple[list[asyncio.Task[Completed[dict[str, int]]]], list[BaseException]]:
    tasks = [asyncio.create_task(svc.call(SCOPE, spec(send, tokens))) for _ in range(n)]
    for _ in range(10):  # every task reserves (or is refused) before its first await
        await asyncio.sleep(0)
    refused = [t.exception() for t in tasks if t.done()]
    return [t for t in tasks if not t.done()], [e for e in refused if e is not None]


async def test_c09_daily_budget_admits_two_of_eight(db: Database) -> None:
    svc, guard = caller(db, settings(daily_budget_usd=0.00010), FakeClock(T0))
    send = FakeSend(2_000, gate=asyncio.Event())  # 2,000 tokens = $0.00004
    running, refused = await _in_flight(svc, 8, send, 2_000)
    assert len(running) == 2 and send.calls == 2
    assert len(refused) == 6 and all(isinstance(e, CostLimitExceeded) for e in refused)
    assert isinstance(refused[0], CostLimitExceeded) and refused[0].reserved == 0.00008
    assert send.gate is not None
    send.gate.set()
    for done in await asyncio.gather(*running):
        done.commit(db, guard)
    assert send.calls == 2 and count(db, "usage") == 2
    spent = db.execute("SELECT SUM(cost_nusd) FROM usage").fetchone()[0]
    assert spent == 80_000 <= 100_000


async def test_c09_hourly_limit_admits_exactly_five_of_twenty(db: Database) -> None:
    svc, guard = caller(db, settings(limits=LimitsSettings(openai_requests_per_hour=5)), FakeClock(T0))
    send = FakeSend(100, gate=asyncio.Event())
    running, refused = await _in_flight(svc, 20, send, 100)
    assert len(running) == 5 and send.calls == 5 and len(refused) == 15
    assert all(isinstance(e, RateLimitExceeded) and e.retry_after == 3600.0 for e in refused)
    assert send.gate is not None
    send.gate.set()
    for done in await asyncio.gather(*running):
        done.commit(db, guard)
    assert count(db, "usage") == 5 and statuses(db) == [("settled", 2_000)] * 5
    with pytest.raises(RateLimitExceeded):  # settled calls hold their slot through their usage rows
        await svc.call(SCOPE, spec(send, 100))
    assert send.calls == 5


async def test_failed_call_releases_and_its_attempt_counts_hourly(db: Database) -> None:
    svc, guard = caller(db, settings(limits=LimitsSettings(openai_requests_per_hour=1)), FakeClock(T0))
    send = FakeSend(100, fail=True)
    with pytest.raises(ServiceUnavailableError):
        await svc.call(SCOPE, spec(send, 100))
    assert statuses(db) == [("released", None)] and daily(guard) == (0, 0)
    with pytest.raises(RateLimitExceeded):
        await svc.call(SCOPE, spec(send, 100))
    assert send.calls == 1
