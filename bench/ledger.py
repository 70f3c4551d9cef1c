"""Ledger throughput: reserve + settle operations per second, in one process and in four.

One operation is what a real call costs the ledger: `LedgerBudget.reserve` (one BEGIN IMMEDIATE
transaction: expire stale reservations, sum today's spend and the active reservations, insert)
followed by the usage row and `settle` in one transaction (`Completed.commit`). Each process has
its own connection to one temporary database file (WAL, busy timeout), as separate `tvdb` runs do.

    python bench/ledger.py
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

OPS_SINGLE = 2000
OPS_PER_PROCESS = 1000
PROCESSES = 4


def _worker(path: str, ops: int, hourly_limit: int | None, barrier: Any, out: Any) -> None:
    from tvdb.clock import SystemClock
    from tvdb.config import LimitsSettings, Settings
    from tvdb.db import open_db, transaction
    from tvdb.domain import Implementation
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.services.factory import budget_settings
    from tvdb.ledger.guard import CallScope, SpendRequest
    from tvdb.ledger.usage import Pricing, UsageRow, insert_usage

    db = open_db(path)
    clock = SystemClock()
    limits = LimitsSettings(openai_requests_per_hour=hourly_limit)
    settings = Settings(daily_budget_usd=1_000_000, limits=limits)
    guard = LedgerBudget(db, budget_settings(settings), clock)
    scope = CallScope(run_id="bench", scenario="bench", stage="embed", job_ids=("j",))
    request = SpendRequest("openai", "text-embedding-3-small", 2000, "tokens", 40_000, scope)
    barrier.wait(timeout=60)
    start = time.time()
    for _ in range(ops):
        reservation = guard.reserve(request)
        with transaction(db):
            insert_usage(db, UsageRow(
                ts=clock.now(), run_id="bench", stage="embed", service="openai",
                implementation=Implementation.REAL, model="text-embedding-3-small", units=2000, unit="tokens",
                pricing=Pricing(40_000, 40_000, "bench"), job_ids=("j",),
            ))
            guard.settle(reservation, 40_000)
    out.put((start, time.time()))
    db.close()


def measure(processes: int, ops: int, hourly_limit: int | None = None) -> float:
    """Operations per second over all processes, from the common start to the last finish."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        from tvdb.db import open_db

        open_db(path).close()
        barrier, out = ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(path, ops, hourly_limit, barrier, out))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        spans = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
    elapsed: float = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * ops / elapsed


def main() -> None:
    import os
    import platform
    import sqlite3

    print(f"ledger bench: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs; 1 op = reserve + (usage row + settle)")
    rows = [
        ("1 process", 1, OPS_SINGLE, None),
        (f"{PROCESSES} processes", PROCESSES, OPS_PER_PROCESS, None),
        ("1 process, hourly limit on", 1, OPS_SINGLE, 10**9),
        (f"{PROCESSES} processes, hourly limit on", PROCESSES, OPS_PER_PROCESS, 10**9),
    ]
    for label, processes, ops, hourly in rows:
        rate = measure(processes, ops, hourly)
        print(f"  {label:<34} {processes * ops:>6} ops  {rate:>8,.0f} ops/s")


if __name__ == "__main__":
    main()
