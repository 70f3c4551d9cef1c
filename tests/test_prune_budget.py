"""`tvdb cost prune` can never hide spend from a budget (issue 7, item 4): the windows budgets read
are never folded, whatever the clock or `--now` say, and budget checks read the aggregates too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.billing import NUSD_PER_TOKEN, billing_emulator
from tests.ledger_rows import add, at
from tests.openai_support import settings_for, text_of_tokens
from tvdb.clock import FakeClock
from tvdb.db import open_db
from tvdb.errors import CostLimitExceeded
from tvdb.ledger.budget import LedgerBudget
from tvdb.ledger.guard import CallScope
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.retention import prune
from tvdb.ledger.windows import assumed_spend_nusd, day_window, real_attempts, real_spend_nusd
from tvdb.services.calls import ServiceCaller
from tvdb.services.embedding import embed_batches
from tvdb.services.factory import budget_settings
from tvdb.services.remote.openai_embedder import build_openai_embedder

NOW = at("2026-06-01T00:30")  # half an hour into the day: the sliding hour reaches into yesterday


def test_a_now_ahead_never_folds_today_or_the_last_hour(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    add(db, NOW - dt.timedelta(minutes=10), units=1_000_000)  # today: $0.02
    add(db, NOW - dt.timedelta(minutes=50), units=1_000_000)  # yesterday, inside the hour
    add(db, NOW - dt.timedelta(days=2), units=1_000_000)  # older: may be folded
    result = prune(db, dt.timedelta(days=1), NOW + dt.timedelta(days=30), also_now=(NOW,))
    assert result.protected and result.rows_folded == 1
    assert result.cutoff == at("2026-05-31T00:00")  # the hour reaches back into yesterday
    assert db.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 2
    assert real_spend_nusd(db, day_window(NOW)) == 20_000_000


def test_budget_checks_read_the_aggregates_so_no_fold_hides_spend(tmp_path: Path) -> None:
    """Even when the machine's clock itself is ahead (both clocks), today's folded spend still counts."""
    db = open_db(tmp_path / "t.db")
    add(db, NOW - dt.timedelta(minutes=10), units=1_000_000, run_id="r1")
    ahead = NOW + dt.timedelta(days=30)
    assert prune(db, dt.timedelta(days=1), ahead).rows_folded == 1
    assert db.execute("SELECT COUNT(*) FROM usage").fetchone()[0] == 0
    settings = settings_for(None, daily_budget_usd=0.03, limits={"openai_requests_per_hour": 1})
    guard = LedgerBudget(db, budget_settings(settings), FakeClock(NOW))
    daily, *_ = guard.forecast([]).checks
    assert (daily.name, daily.used) == ("daily", 20_000_000)
    assert real_spend_nusd(db, run_id="r1") == 20_000_000
    assert real_attempts(db, "openai", NOW - dt.timedelta(hours=1), NOW) == (0, 1)
    from tests.test_budget import request

    with pytest.raises(CostLimitExceeded):
        guard.reserve(request(10_000_001))


def test_assumed_spend_survives_folding(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    add(db, at("2026-01-05T10:00"), units=1000)
    db.execute("UPDATE usage SET assumed = 1")
    prune(db, dt.timedelta(days=30), NOW)
    assert assumed_spend_nusd(db) == real_spend_nusd(db) == 20_000


async def test_prune_with_a_clock_ahead_then_spend_the_provider_billed_stays_within_budget(tmp_path: Path) -> None:
    """Two requests spent, the ledger pruned with every clock 30 days ahead, then a third request:
    the budget (2.5 requests) still refuses it."""
    clock = FakeClock(NOW)
    text = text_of_tokens(1000)
    with billing_emulator() as (server, billing):
        settings = settings_for(server, daily_budget_usd=2.5 * 1000 * NUSD_PER_TOKEN / 1e9)
        db = open_db(tmp_path / "t.db")
        guard = LedgerBudget(db, budget_settings(settings), clock)
        caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, budget=guard)
        embedder = build_openai_embedder(settings)
        errors: list[object] = []
        try:
            for i in range(3):
                if i == 2:
                    ahead = NOW + dt.timedelta(days=30)
                    assert prune(db, dt.timedelta(days=1), ahead, also_now=(ahead,)).rows_folded == 2
                await embed_batches([f"{text} {i}"], embedder=embedder, caller=caller, settings=settings, clock=clock,
                                    scope=CallScope("r", "s", "embed"), on_error=lambda _i, e: errors.append(e))
        finally:
            await embedder.aclose()
    assert len(errors) == 1 and isinstance(errors[0], CostLimitExceeded)
    assert billing.billed_requests == 2
    assert billing.billed_nusd <= 2.5 * 1000 * NUSD_PER_TOKEN
    assert real_spend_nusd(db) >= billing.billed_nusd


def test_a_longer_error_rate_window_is_kept_too(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    add(db, NOW - dt.timedelta(hours=30))  # two days back by the calendar, inside a 36 h window
    assert prune(db, dt.timedelta(days=1), NOW, recent=dt.timedelta(hours=36)).rows_folded == 0
    assert prune(db, dt.timedelta(days=1), NOW).rows_folded == 1
