"""The budget holds across OS processes (issue 3 proof, C09 at process level, C13).

Threads would share one interpreter and could hide a race that only separate connections in
separate processes show, so every worker here is a `spawn`ed process with its own connection.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

from tests import ledger_workers
from tvdb.db import open_db

WORKERS = 8
ROUNDS = 20
ATTEMPTS = 3  # per worker per round: 24 attempts for room for 10
TOKENS = 2_000  # $0.00004 each at $0.02 / 1M tokens
CALL_NUSD = 40_000
BUDGET_USD = 0.0004  # 400,000 nano-USD: exactly 10 calls, 1.25 per worker
BUDGET_NUSD = 400_000
FAILING_ROUNDS = [r for r in range(ROUNDS) if r % 2 == 1]  # odd rounds: some sends fail and release
LOCKED = "database is locked"


def _join(procs: list[Any], timeout: float = 60) -> None:
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
    assert not alive, f"{len(alive)} worker processes hung"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_eight_processes_share_one_daily_budget(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    paths = [str(tmp_path / f"round{r:02d}.db") for r in range(ROUNDS)]  # created by the workers, together
    barrier = ctx.Barrier(WORKERS)
    sends = ctx.Array("i", ROUNDS)  # the "HTTP server's" request count per round
    out = ctx.Queue()
    procs = [
        ctx.Process(target=ledger_workers.spend_worker,
                    args=(w, paths, barrier, sends, ATTEMPTS, TOKENS, BUDGET_USD, FAILING_ROUNDS, out))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = dict(out.get(timeout=120) for _ in procs)
    _join(procs)

    released = 0
    errors = [e for rs in reports.values() for r in rs for e in r["errors"]]
    assert not any(LOCKED in e for e in errors), "a process saw 'database is locked'"
    assert errors == []
    for r in range(ROUNDS):
        refused = sum(reports[w][r]["refused"] for w in range(WORKERS))
        db = open_db(paths[r])
        spent, ok_rows = db.execute(
            "SELECT COALESCE(SUM(cost_nusd), 0), COUNT(*) FROM usage "
            "WHERE implementation = 'real' AND status = 'ok'"
        ).fetchone()
        rows, failed = db.execute("SELECT COUNT(*), SUM(status = 'error') FROM usage").fetchone()
        by_status = dict(db.execute("SELECT status, COUNT(*) FROM reservations GROUP BY status").fetchall())
        admitted = sum(by_status.values())
        db.close()
        assert spent <= BUDGET_NUSD, f"round {r}: spent {spent} nano-USD over a budget of {BUDGET_NUSD}"
        assert refused >= 1, f"round {r}: nothing was refused"
        assert admitted + refused == WORKERS * ATTEMPTS
        # No refused call reached HTTP: every send had a reservation, and every send left a usage row.
        assert sends[r] == admitted == rows, f"round {r}: sends {sends[r]}, admitted {admitted}, rows {rows}"
        assert by_status.get("active", 0) == 0 and by_status.get("expired", 0) == 0
        assert spent == CALL_NUSD * by_status["settled"] == CALL_NUSD * ok_rows
        if r not in FAILING_ROUNDS:
            # Nothing failed, so a refusal means the budget was really full: exactly 10 calls fit.
            assert (spent, admitted, refused) == (BUDGET_NUSD, 10, WORKERS * ATTEMPTS - 10)
        released += by_status.get("released", 0)
        assert by_status.get("released", 0) == failed  # a failed send releases its reservation
    assert released >= 1, "no round exercised release under contention"
    in_flight = sum(r["refused_in_flight"] for rs in reports.values() for r in rs)
    assert in_flight >= 1, "no refusal ever counted a reservation still in flight"


def test_c13_sixteen_writers_and_a_reader(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    path = tmp_path / "ledger.db"
    open_db(path).close()
    writers, rows = 16, 100
    barrier = ctx.Barrier(writers + 1)
    stop = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=ledger_workers.ledger_writer, args=(w, str(path), rows, barrier, out))
             for w in range(writers)]
    reader = ctx.Process(target=ledger_workers.ledger_reader, args=(str(path), barrier, stop, out))
    for p in (*procs, reader):
        p.start()
    reports = [out.get(timeout=120) for _ in procs]
    stop.set()
    reader_report = out.get(timeout=60)
    _join([*procs, reader])

    assert [r[2] for r in reports] == [[]] * writers
    kind, reads, monotonic, reader_errors = reader_report
    assert kind == "reader" and reader_errors == [] and reads > 0 and monotonic
    db = open_db(path)
    count, total = db.execute("SELECT COUNT(*), SUM(cost_nusd) FROM usage").fetchone()
    db.close()
    expected = sum(w * 1000 + i + 1 for w in range(writers) for i in range(rows))
    assert (count, total) == (1600, expected)
