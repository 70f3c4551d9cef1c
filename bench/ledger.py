"""Ledger throughput: reserve + settle operations per second, in one process and in four.

One operation is what a real call costs the ledger: `LedgerBudget.reserve` (one transaction under
the budget lock: sweep stale reservations, sum today's spend and the active reservations, insert)
followed by the usage row and `settle` in one transaction (`Completed.commit`). Each process has
its own connection, as separate `tvdb` runs do: to one temporary SQLite file (WAL, busy timeout),
or with `--engine postgresql` also to one PostgreSQL database (the budget lock is then
pg_advisory_xact_lock), measured in the same run so the ratio compares like with like.

    python bench/ledger.py                       # SQLite only
    python bench/ledger.py --engine postgresql   # both engines, then the postgresql/sqlite ratio
    python bench/ledger.py --engine postgresql --url postgresql://user:pw@host/db   # an existing server

Without --url a throwaway PostgreSQL server is started on loopback (tests/pg_server.py: initdb in a
temporary directory, as an unprivileged user when run as root; Debian's binaries) and removed at the
end. That server runs with fsync off, as the test server does: the figures measure locking and round
trips, not the disk.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPS_SINGLE = 2000
OPS_PER_PROCESS = 1000
PROCESSES = 4


def _open(target: str) -> Any:
    from tvdb.db import open_db, open_pg

    return open_pg(target, max_size=1) if target.startswith("postgresql://") else open_db(target)


def _worker(target: str, ops: int, hourly_limit: int | None, barrier: Any, out: Any) -> None:
    from tvdb.clock import SystemClock
    from tvdb.config import LimitsSettings, Settings
    from tvdb.domain import Implementation
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.ledger.guard import CallScope, SpendRequest
    from tvdb.ledger.usage import Pricing, UsageRow, insert_usage
    from tvdb.services.factory import budget_settings
    from tvdb.storage import transaction

    db = _open(target)
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


def measure(processes: int, ops: int, hourly_limit: int | None = None, *, new_target: Any) -> float:
    """Operations per second over all processes, from the common start to the last finish, on a new
    database that `new_target()` gives (a path or a URL)."""
    ctx = mp.get_context("spawn")
    target = new_target()
    _open(target).close()  # the schema exists before the clock starts
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(target, ops, hourly_limit, barrier, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    spans = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    elapsed: float = max(end for _, end in spans) - min(start for start, _ in spans)
    return processes * ops / elapsed


ROWS = [
    ("1 process", 1, OPS_SINGLE, None),
    (f"{PROCESSES} processes", PROCESSES, OPS_PER_PROCESS, None),
    ("1 process, hourly limit on", 1, OPS_SINGLE, 10**9),
    (f"{PROCESSES} processes, hourly limit on", PROCESSES, OPS_PER_PROCESS, 10**9),
]


def _engine_rows(name: str, new_target: Any) -> dict[str, float]:
    rates = {}
    for label, processes, ops, hourly in ROWS:
        rates[label] = rate = measure(processes, ops, hourly, new_target=new_target)
        print(f"  {name:<10} {label:<34} {processes * ops:>6} ops  {rate:>8,.0f} ops/s", flush=True)
    return rates


@contextlib.contextmanager
def _pg_targets(url: str | None) -> Iterator[Any]:
    """A function giving the URL of a new, empty PostgreSQL database for each measurement."""
    if url is not None:
        import psycopg

        def on_server() -> str:
            name = "tvdb_bench_" + uuid.uuid4().hex[:12]
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}".encode())
            return url.rsplit("/", 1)[0] + "/" + name

        yield on_server
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pg_server import running_server

    with running_server() as server:
        yield server.fresh_database


def main() -> None:
    import argparse
    import os
    import platform
    import sqlite3

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite",
                        help="postgresql: measure both engines in this run and print their ratio")
    parser.add_argument("--url", help="an existing PostgreSQL server (a database per measurement is created)")
    args = parser.parse_args()
    print(f"ledger bench: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs; 1 op = reserve + (usage row + settle)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1_000_000))
        sqlite_rates = _engine_rows("sqlite", lambda: str(Path(tmp) / f"bench{next(counter)}.db"))
    if args.engine == "sqlite":
        return
    with _pg_targets(args.url) as new_target:
        import psycopg

        with psycopg.connect(new_target()) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(f"  PostgreSQL {version[0] if version else '?'}, psycopg {psycopg.__version__}", flush=True)
        pg_rates = _engine_rows("postgresql", new_target)
    for label, _, _, _ in ROWS:
        print(f"  postgresql/sqlite {label:<34} {pg_rates[label] / sqlite_rates[label]:.2f}")
    four = f"{PROCESSES} processes"
    print(f"postgresql/sqlite ops ratio ({PROCESSES} processes) = {pg_rates[four] / sqlite_rates[four]:.2f}")


if __name__ == "__main__":
    main()
