"""The daily budget holds across machines sharing one PostgreSQL ledger (issue 9's proof).

Eight OS processes in two groups, each group a simulated machine (its own data dir and host
name), share one PostgreSQL ledger; a barrier releases them together for 20 rounds, each round a
new day whose budget fits 10 of the 24 calls they try. And a process killed with SIGKILL while it
holds a reservation leaves assumed spend, found by the pid on its own host and by the lease from
another host, exactly as on SQLite.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any

from tests import pg_workers
from tests.engines import open_target
from tvdb.clock import FakeClock
from tvdb.ledger.budget import BudgetSettings, LedgerBudget

WORKERS = 8
GROUPS = 2
ROUNDS = 20
ATTEMPTS = 3  # per worker per round: 24 attempts for room for 10
TOKENS = 2_000  # $0.00004 each at $0.02 / 1M tokens
CALL_NUSD = 40_000
BUDGET_USD = 0.0004  # 400,000 nano-USD: exactly 10 calls
BUDGET_NUSD = 400_000
BAD = ("deadlock", "could not serialize", "SerializationFailure", "DeadlockDetected", "database is locked")


def _join(procs: list[Any], timeout: float = 120) -> None:
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} worker processes hung"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_eight_processes_on_two_machines_share_one_daily_budget(tmp_path: Path, pg_url: str) -> None:
    ctx = mp.get_context("spawn")
    dirs = [tmp_path / f"machine-{g}" / ".tvdb" for g in range(GROUPS)]
    barrier = ctx.Barrier(WORKERS)
    sends = ctx.Array("i", ROUNDS)  # the "HTTP server's" request count per round
    out = ctx.Queue()
    procs = [
        ctx.Process(target=pg_workers.spend_rounds,
                    args=(w, pg_url, str(dirs[w % GROUPS]), f"sim-host-{w % GROUPS}", barrier, sends, ROUNDS,
                          ATTEMPTS, TOKENS, BUDGET_USD, out))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = dict(out.get(timeout=300) for _ in procs)
    _join(procs)

    errors = [e for rs in reports.values() for r in rs for e in r["errors"]]
    assert not [e for e in errors if any(b in e for b in BAD)], "a deadlock or serialization error surfaced"
    assert errors == []
    db = open_target(pg_url)
    try:
        for r in range(ROUNDS):
            day = pg_workers.round_day(r).date().isoformat()
            refused = sum(reports[w][r]["refused"] for w in range(WORKERS))
            spent, ok_rows = db.execute(
                "SELECT COALESCE(SUM(cost_nusd), 0), COUNT(*) FROM usage WHERE implementation = 'real' "
                "AND status = 'ok' AND substr(ts, 1, 10) = ?", [day]).fetchone() or (0, 0)
            rows = db.execute("SELECT COUNT(*) FROM usage WHERE substr(ts, 1, 10) = ?", [day]).fetchone()
            by_status = dict(db.execute(
                "SELECT status, COUNT(*) FROM reservations WHERE substr(created_at, 1, 10) = ? GROUP BY status",
                [day]).fetchall())
            admitted = sum(by_status.values())
            assert spent <= BUDGET_NUSD, f"round {r}: spent {spent} nano-USD over a budget of {BUDGET_NUSD}"
            assert refused >= 1, f"round {r}: nothing was refused"
            assert admitted + refused == WORKERS * ATTEMPTS
            # only admitted calls were sent, and every send left a usage row
            assert rows is not None and sends[r] == admitted == rows[0], (r, sends[r], admitted, rows)
            assert by_status == {"settled": 10}
            assert (spent, ok_rows, refused) == (BUDGET_NUSD, 10, WORKERS * ATTEMPTS - 10)
        hosts = {h for (h,) in db.execute("SELECT DISTINCT host FROM reservations").fetchall()}
        assert hosts == {"sim-host-0", "sim-host-1"}  # both machines were admitted calls
    finally:
        db.close()
    in_flight = sum(r["refused_in_flight"] for rs in reports.values() for r in rs)
    assert in_flight >= 1, "no refusal ever counted a reservation still in flight"
    assert not [p for d in dirs for p in d.rglob("*.db")], "a SQLite ledger file was written"


def _killed_holder(url: str, host: str | None, ttl_s: int) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=pg_workers.hold_and_wait, args=(url, host, ttl_s, ready))
    holder.start()
    assert ready.wait(60), "the holder never reserved"
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    assert holder.exitcode == -signal.SIGKILL


def _ledger(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    db = open_target(url)
    try:
        reservations = [tuple(r) for r in db.execute(
            "SELECT status, amount_nusd, settled_nusd FROM reservations").fetchall()]
        usage = [tuple(r) for r in db.execute(
            "SELECT status, error_code, assumed, cost_nusd FROM usage").fetchall()]
    finally:
        db.close()
    return reservations, usage


def test_a_killed_holder_on_this_host_is_assumed_spend(pg_url: str) -> None:
    _killed_holder(pg_url, None, ttl_s=600)  # this host: its dead pid says it is gone, lease or not
    db = open_target(pg_url)
    try:
        guard = LedgerBudget(db, BudgetSettings(daily_budget_usd=1.0), FakeClock(pg_workers.NOW))
        assert guard.sweep() == 1
        assert guard.sweep() == 0  # once only
        daily = next(c for c in guard.forecast([]).checks if c.name == "daily")
        assert (daily.used, daily.reserved) == (40_000, 0)
    finally:
        db.close()
    assert _ledger(pg_url) == ([("assumed", 40_000, 40_000)], [("error", "owner_gone", 1, 40_000)])


def test_a_killed_holder_on_another_host_is_assumed_spend_when_its_lease_ends(pg_url: str) -> None:
    _killed_holder(pg_url, "sim-host-elsewhere", ttl_s=120)
    db = open_target(pg_url)
    try:
        guard = LedgerBudget(db, BudgetSettings(daily_budget_usd=1.0),
                             FakeClock(pg_workers.NOW + dt.timedelta(seconds=119)))
        assert guard.sweep() == 0  # another host: only the lease can tell, and it still runs
        daily = next(c for c in guard.forecast([]).checks if c.name == "daily")
        assert (daily.used, daily.reserved) == (0, 40_000)  # still held, never free room
        later = LedgerBudget(db, BudgetSettings(daily_budget_usd=1.0),
                             FakeClock(pg_workers.NOW + dt.timedelta(seconds=121)))
        assert later.sweep() == 1
    finally:
        db.close()
    assert _ledger(pg_url) == ([("assumed", 40_000, 40_000)], [("error", "owner_gone", 1, 40_000)])
