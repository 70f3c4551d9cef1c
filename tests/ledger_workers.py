"""Process entry points for tests/test_budget_processes.py (importable by `spawn` children).

Each worker opens its own connection to the shared database file, as a separate `tvdb`
process would, and reports what it saw (including every unexpected error) on a queue.
"""

from __future__ import annotations

import datetime as dt
import functools
import traceback
from typing import Any

# Imports sit inside the functions: each spawned child pays only for what it runs (C13 starts 17).

# A fixed instant: the race must not depend on the wall clock crossing midnight.
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def spend_worker(worker: int, paths: list[str], barrier: Any, sends: Any, attempts: int, tokens: int,
                 daily_usd: float, failing_rounds: list[int], out: Any) -> None:
    """For each new database file in `paths`: open it together with the other workers, wait at the
    barrier again, then try `attempts` real calls in a row.

    A call is reserve → simulated HTTP send (counted in `sends[round]`) → usage row + settle in one
    transaction (`Completed.commit`). In a round listed in `failing_rounds`, this worker's first
    send fails (usage error row + release) when `worker` is even. Reports refusals and errors.
    """
    import asyncio

    results: list[dict[str, Any]] = []
    for round_no, path in enumerate(paths):
        outcome: dict[str, Any] = {"refused": 0, "refused_in_flight": 0, "errors": []}
        try:
            fail_at = 0 if round_no in failing_rounds and worker % 2 == 0 else None
            asyncio.run(_spend_round(worker, path, barrier, sends, round_no, attempts, tokens, daily_usd,
                                     fail_at, outcome))
        except BaseException:  # noqa: BLE001 - everything is reported to the parent
            outcome["errors"].append(traceback.format_exc())
        results.append(outcome)
    out.put((worker, results))


async def _spend_round(worker: int, path: str, barrier: Any, sends: Any, round_no: int, attempts: int,
                       tokens: int, daily_usd: float, fail_at: int | None, outcome: dict[str, Any]) -> None:
    import asyncio

    from tvdb.clock import FakeClock
    from tvdb.config import Settings
    from tvdb.db import open_db
    from tvdb.domain import Implementation
    from tvdb.errors import CostLimitExceeded, ServiceUnavailableError
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.ledger.guard import CallScope
    from tvdb.ledger.prices import PriceTable
    from tvdb.services.calls import CallSpec, ServiceCaller
    from tvdb.services.factory import budget_settings

    barrier.wait(timeout=20)
    db = open_db(path)  # all eight open the new database file at once
    clock = FakeClock(NOW)
    guard = LedgerBudget(db, budget_settings(Settings(daily_budget_usd=daily_usd)), clock)
    caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, budget=guard)
    scope = CallScope(run_id=f"run-{worker}", scenario="race", stage="embed", job_ids=(f"j{worker}",))

    async def send(fail: bool) -> int:
        with sends.get_lock():
            sends[round_no] += 1
        await asyncio.sleep(0.002)  # the request is in flight: its reservation is held
        if fail:
            raise ServiceUnavailableError("simulated 503", service="openai", status=503)
        return tokens

    barrier.wait(timeout=20)
    for n in range(attempts):
        spec = CallSpec(service="openai", implementation=Implementation.REAL, model="text-embedding-3-small",
                        unit="tokens", estimate_units=tokens, send=functools.partial(send, n == fail_at),
                        actual_units=lambda v: v)
        try:
            done = await caller.call(scope, spec)
        except CostLimitExceeded as exc:
            outcome["refused"] += 1
            # Refused while money of calls in flight (in this or another process) was held.
            outcome["refused_in_flight"] += exc.reserved > 0
            continue
        except ServiceUnavailableError:
            continue
        done.commit(db, guard)
    db.close()


def ledger_writer(worker: int, path: str, rows: int, barrier: Any, out: Any) -> None:
    """Write `rows` real usage rows, each in its own transaction; row i costs worker*1000 + i + 1 nano-USD."""
    from tvdb.db import open_db
    from tvdb.domain import Implementation
    from tvdb.ledger.usage import Pricing, UsageRow, insert_usage

    errors: list[str] = []
    try:
        db = open_db(path)
        barrier.wait(timeout=20)
        for i in range(rows):
            cost = worker * 1000 + i + 1
            insert_usage(db, UsageRow(
                ts=NOW, run_id=f"w{worker}", stage="embed", service="openai",
                implementation=Implementation.REAL, model="text-embedding-3-small", units=1, unit="tokens",
                pricing=Pricing(cost, cost, "v"), attempt=1,
            ))
        db.close()
    except BaseException:  # noqa: BLE001
        errors.append(traceback.format_exc())
    out.put(("writer", worker, errors))


def ledger_reader(path: str, barrier: Any, stop: Any, out: Any) -> None:
    """Sum today's spend (as the budget sees it) and count rows in a loop until `stop` is set."""
    from tvdb.clock import FakeClock
    from tvdb.config import Settings
    from tvdb.db import open_db
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.services.factory import budget_settings

    errors: list[str] = []
    sums: list[int] = []
    try:
        db = open_db(path)
        guard = LedgerBudget(db, budget_settings(Settings(daily_budget_usd=1000)), FakeClock(NOW))
        barrier.wait(timeout=20)
        while not stop.is_set():
            daily = next(c for c in guard.forecast([]).checks if c.name == "daily")
            rows = db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
            sums.append(daily.used)
            if rows > 1600:
                errors.append(f"{rows} rows")
        db.close()
    except BaseException:  # noqa: BLE001
        errors.append(traceback.format_exc())
    monotonic = all(a <= b for a, b in zip(sums, sums[1:], strict=False))
    out.put(("reader", len(sums), monotonic, errors))
