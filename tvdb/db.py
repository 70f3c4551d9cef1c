"""The one SQLite database (`tvdb.db`): runs, jobs, events, pages, chunks, vectors and the usage ledger.

Opened in WAL mode with a busy timeout so that several `tvdb` processes can share it; the
schema is created and evolved by named sqlite-utils migrations.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from tvdb.errors import ConfigError

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

    status: active → settled | released | assumed (`expired` in databases of older versions).
    Amounts in integer nano-USD.
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


@migrations()
def m003_budget_index(db: sqlite_utils.Database) -> None:
    """A covering index for the two sums every budget check runs (`tvdb.ledger.budget`): today's
    real spend (implementation, ts range, cost_nusd) and a service's real attempts in the last hour."""
    db.table("usage").create_index(
        ["implementation", "ts", "service", "cost_nusd"], index_name="idx_usage_budget"
    )


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path` with WAL, a busy timeout and the current schema."""
    try:
        return _open(Path(path))
    except (OSError, sqlite3.DatabaseError) as exc:
        raise ConfigError(
            f"cannot open the tvdb database {path}: {exc}; point --data-dir / TVDB_DATA_DIR (or TVDB_DB_PATH) "
            "at a directory of its own"
        ) from None


def _open(path: Path) -> sqlite_utils.Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `transaction`), so a
    # writer takes the lock up front instead of failing half-way with "database is locked".
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    with transaction(db):
        migrations.apply(db)
    return db


def _enable_wal(conn: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode = WAL`, retried while another process holds the lock.

    Switching a new database file to WAL needs an exclusive lock that SQLite does not wait for
    through the busy handler, so several processes opening the same new file at once would
    otherwise fail with "database is locked". Once the file is in WAL mode this is a no-op.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


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


@migrations()
def m004_assumed_spend(db: sqlite_utils.Database) -> None:
    """Assumed spend (tvdb.ledger.guard): a usage row whose cost is the estimate of a request that may
    have been billed (`assumed` = 1, `reservation_id` its reservation), and reservation owners
    (stage, correlation id, pid start time, host) so that a dead owner's reservation is assumed spent."""
    db.table("usage").add_column("assumed", int, not_null_default=0)
    db.table("usage").add_column("reservation_id", str)
    db.table("usage").create_index(["reservation_id"])
    for column in ("stage", "correlation_id", "pid_started", "host"):
        db.table("reservations").add_column(column, str)


# Migrations m010+ belong to reports, retention, repricing and alerts (tvdb/ledger/{retention,
# reprice,alerts}.py); they are numbered from 10 so that budget migrations can use m003…m009.


@migrations()
def m010_alerts(db: sqlite_utils.Database) -> None:
    """Alerts (one per threshold per window: `key` is unique), their deliveries, and mute windows."""
    db.table("alerts").create(
        {
            "alert_id": int, "key": str, "kind": str, "severity": str, "title": str, "message": str,
            "created_at": str, "window_label": str, "window_start": str, "window_end": str,
            "details_json": str, "muted": int, "delivery_status": str, "acknowledged_at": str,
        },
        pk="alert_id",
    )
    db.table("alerts").create_index(["key"], unique=True)
    db.table("alerts").create_index(["acknowledged_at"])
    db.table("alert_deliveries").create(
        {
            "id": int, "alert_id": int, "channel": str, "status": str, "attempts": int, "reason": str,
            "at": str,
        },
        pk="id",
    )
    db.table("alert_deliveries").create_index(["alert_id"])
    db.table("alert_mutes").create(
        {"id": int, "created_at": str, "until": str, "reason": str, "ended_at": str}, pk="id"
    )


@migrations()
def m011_usage_daily(db: sqlite_utils.Database) -> None:
    """Pruned usage folded into one row per local day and group (`key` = JSON of day + group columns).

    Sums are integer nano-USD over the calls whose price was known; `*_unknown` count the others.
    """
    db.table("usage_daily").create(
        {
            "key": str, "day": str, "timezone": str, "start_ts": str, "end_ts": str,
            "service": str, "model": str, "scenario": str, "implementation": str, "run_id": str,
            "stage": str, "unit": str, "price_version": str,
            "calls": int, "errors": int, "units": float,
            "cost_nusd": int, "would_cost_nusd": int, "cost_unknown": int, "would_cost_unknown": int,
        },
        pk="key",
    )
    db.table("usage_daily").create_index(["start_ts"])


@migrations()
def m012_reprices(db: sqlite_utils.Database) -> None:
    """Old values of repriced rows (`source` usage | usage_daily, `row_ref` its id or key)."""
    db.table("usage_reprices").create(
        {
            "id": int, "reprice_id": str, "repriced_at": str, "source": str, "row_ref": str,
            "old_price_version": str, "old_cost_nusd": int, "old_would_cost_nusd": int,
            "new_price_version": str, "new_cost_nusd": int, "new_would_cost_nusd": int,
        },
        pk="id",
    )
    db.table("usage_reprices").create_index(["reprice_id"])
    db.table("usage_reprices").create_index(["source", "row_ref"])


@migrations()
def m013_run_owner(db: sqlite_utils.Database) -> None:
    """Which process runs a run (pid, host), so `tvdb runs` can tell a live run from a killed one."""
    db.table("runs").add_column("pid", int)
    db.table("runs").add_column("host", str)


@migrations()
def m014_run_owner_started(db: sqlite_utils.Database) -> None:
    """The owner's process start time: a pid reused by another process does not hold the run."""
    db.table("runs").add_column("pid_started", str)


@migrations()
def m015_usage_daily_assumed(db: sqlite_utils.Database) -> None:
    """Assumed spend folded into daily aggregates (part of `cost_nusd`, shown apart)."""
    db.table("usage_daily").add_column("assumed_nusd", int, not_null_default=0)
