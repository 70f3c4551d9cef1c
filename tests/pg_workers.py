"""Process entry points for tests/test_pg_budget_processes.py (importable by `spawn` children).

Each worker is one `tvdb` process of a simulated machine: its own data dir and host name, the
shared PostgreSQL ledger named by `database_url`, its own connection pool.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import traceback
from typing import Any

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def round_day(round_no: int) -> dt.datetime:
    """Round r happens on day r after NOW: each round starts with a whole, empty daily budget."""
    return NOW + dt.timedelta(days=round_no)


def host_owner(host: str) -> dict[str, Any]:
    """This process as a reservation owner on the simulated machine `host` (only its lease vouches
    for it to the other machine)."""
    from tvdb.owner import process_started

    return {"pid": os.getpid(), "pid_started": process_started(os.getpid()), "host": host}


def spend_rounds(worker: int, url: str, data_dir: str, host: str, barrier: Any, sends: Any, rounds: int,
                 attempts: int, tokens: int, daily_usd: float, out: Any) -> None:
    """For each round: wait at the barrier with every other worker, then try `attempts` real calls
    (reserve → simulated send counted in `sends[round]` → usage row + settle). Reports refusals and
    every unexpected error (a deadlock or serialization failure would be one)."""
    import asyncio

    results: list[dict[str, Any]] = []
    try:
        from tvdb.config import Settings
        from tvdb.db import open_storage

        settings = Settings(data_dir=data_dir, database_url=url, daily_budget_usd=daily_usd)  # type: ignore[arg-type]
        db = open_storage(settings)
        for round_no in range(rounds):
            outcome: dict[str, Any] = {"refused": 0, "refused_in_flight": 0, "errors": []}
            try:
                barrier.wait(timeout=60)
                asyncio.run(_round(worker, db, settings, host, sends, round_no, attempts, tokens, outcome))
            except BaseException:  # noqa: BLE001 - everything is reported to the parent
                outcome["errors"].append(traceback.format_exc())
            results.append(outcome)
        db.close()
    except BaseException:  # noqa: BLE001
        results.append({"refused": 0, "refused_in_flight": 0, "errors": [traceback.format_exc()]})
    out.put((worker, results))


async def _round(worker: int, db: Any, settings: Any, host: str, sends: Any, round_no: int, attempts: int,
                 tokens: int, outcome: dict[str, Any]) -> None:
    import asyncio

    from tvdb.clock import FakeClock
    from tvdb.domain import Implementation
    from tvdb.errors import CostLimitExceeded
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.ledger.guard import CallScope
    from tvdb.ledger.prices import PriceTable
    from tvdb.services.calls import CallSpec, ServiceCaller
    from tvdb.services.factory import budget_settings

    clock = FakeClock(round_day(round_no))
    guard = LedgerBudget(db, budget_settings(settings), clock, owner=host_owner(host))
    caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, budget=guard)
    scope = CallScope(run_id=f"run-{worker}-{round_no}", scenario="race", stage="embed", job_ids=(f"j{worker}",))

    async def send() -> int:
        with sends.get_lock():
            sends[round_no] += 1
        await asyncio.sleep(0.002)  # the request is in flight: its reservation is held
        return tokens

    for _ in range(attempts):
        spec = CallSpec(service="openai", implementation=Implementation.REAL, model="text-embedding-3-small",
                        unit="tokens", estimate_units=tokens, send=functools.partial(send), actual_units=lambda v: v)
        try:
            done = await caller.call(scope, spec)
        except CostLimitExceeded as exc:
            outcome["refused"] += 1
            outcome["refused_in_flight"] += exc.reserved > 0
            continue
        done.commit(db, guard)


def hold_and_wait(url: str, host: str | None, ttl_s: int, ready: Any) -> None:
    """Reserve one call on the shared ledger, signal `ready`, then hang as if the request were in
    flight (the parent kills this process with SIGKILL)."""
    from tvdb.clock import FakeClock
    from tvdb.db import open_pg
    from tvdb.ledger.budget import BudgetSettings, LedgerBudget
    from tvdb.ledger.guard import CallScope, SpendRequest

    db = open_pg(url, max_size=1)
    owner = host_owner(host) if host else None
    guard = LedgerBudget(db, BudgetSettings(daily_budget_usd=1.0, reservation_ttl_s=ttl_s), FakeClock(NOW),
                         owner=owner)
    scope = CallScope(run_id="held", scenario="kill", stage="embed", job_ids=("j1",))
    guard.reserve(SpendRequest("openai", "text-embedding-3-small", 2000, "tokens", 40_000, scope))
    ready.set()
    signal.pause()
