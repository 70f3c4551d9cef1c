"""The one SQLite database (`tvdb.db`): runs, jobs, events, pages, chunks, vectors and the usage ledger.

Opened in WAL mode with a busy timeout so that several `tvdb` processes can share it; the
schema is created and evolved by named sqlite-utils migrations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

BUSY_TIMEOUT_MS = 30_000

migrations = Migrations("tvdb")


@migrations()
def m001_core(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "run_id": str, "scenario": str, "scenario_path": str, "mode": str, "status": str,
            "started_at": str, "finished_at": str, "spec_json": str, "passed": int, "result_json": str,
        },
        pk="run_id",
    )
    db.table("jobs").create(
        {
            "job_id": str, "run_id": str, "ordinal": int, "correlation_id": str, "path": str,
            "media_type": str, "size_bytes": int, "sha256": str, "object_key": str, "settings_key": str,
            "state": str, "error_code": str, "error_message": str, "pages": int, "chunks": int,
            "tokens": int, "reused_from": str, "created_at": str, "updated_at": str, "stage_ms_json": str,
            "deferred_from": str, "deferred_until": str,
        },
        pk="job_id",
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("jobs").create_index(["run_id", "ordinal"], unique=True)
    db.table("jobs").create_index(["sha256", "settings_key", "state"])
    db.table("events").create(
        {
            "id": int, "ts": str, "run_id": str, "job_id": str, "correlation_id": str,
            "from_state": str, "to_state": str, "detail": str,
        },
        pk="id",
    )
    db.table("events").create_index(["job_id"])
    db.table("pages").create({"job_id": str, "number": int, "text": str}, pk=("job_id", "number"))
    db.table("chunks").create(
        {"chunk_id": str, "job_id": str, "idx": int, "text": str, "token_count": int, "pages": str},
        pk="chunk_id",
    )
    db.table("chunks").create_index(["job_id", "idx"], unique=True)
    db.table("vectors").create(
        {"chunk_id": str, "job_id": str, "model": str, "dimensions": int, "vector": bytes},
        pk="chunk_id",
    )
    db.table("vectors").create_index(["job_id"])
    db.table("usage").create(
        {
            "id": int, "ts": str, "run_id": str, "job_id": str, "job_ids": str, "correlation_id": str,
            "scenario": str, "stage": str, "service": str, "implementation": str, "provenance": str,
            "model": str, "units": float, "unit": str, "usage_json": str,
            "cost_usd": float, "would_cost_usd": float, "cost_nusd": int, "would_cost_nusd": int,
            "price_version": str, "status": str, "error_code": str, "http_status": int,
            "latency_ms": float, "request_id": str, "attempt": int,
        },
        pk="id",
    )
    db.table("usage").create_index(["run_id"])
    db.table("usage").create_index(["ts"])


@migrations()
def m002_reservations(db: sqlite_utils.Database) -> None:
    """Budget reservations: money and request slots held for a real call until it settles.

    status: active → settled | released | expired. Amounts in integer nano-USD.
    """
    db.table("reservations").create(
        {
            "reservation_id": str, "created_at": str, "expires_at": str, "service": str, "model": str,
            "run_id": str, "scenario": str, "job_ids": str, "units": float, "unit": str,
            "amount_nusd": int, "status": str, "settled_nusd": int, "settled_at": str, "pid": int,
        },
        pk="reservation_id",
    )
    db.table("reservations").create_index(["status", "service"])
    db.table("reservations").create_index(["run_id"])


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path` with WAL, a busy timeout and the current schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `transaction`), so a
    # writer takes the lock up front instead of failing half-way with "database is locked".
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    with transaction(db):
        migrations.apply(db)
    return db


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception. Nested use joins the outer one."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
