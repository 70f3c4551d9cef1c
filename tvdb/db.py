"""The one SQLite database (`tvdb.db`): runs, jobs, events, pages, chunks, vectors and the usage ledger.

Opened in WAL mode with a busy timeout so that several `tvdb` processes can share it; the
schema is created and evolved by named sqlite-utils migrations.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from tvdb.errors import ConfigError, StorageError

BUSY_TIMEOUT_MS = 30_000

migrations = Migrations("tvdb")


@contextmanager
def savepoint(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Inside an open `transaction`: the block's writes are undone if it raises (ROLLBACK TO), kept
    otherwise, and committed with the outer transaction. Lets one transaction carry a whole stage's
    documents while a document that fails leaves nothing half-written."""
    conn = db.conn
    if not conn.in_transaction:
        raise RuntimeError("savepoint() needs an open transaction")
    conn.execute("SAVEPOINT tvdb_step")
    try:
        yield db
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO tvdb_step")
            conn.execute("RELEASE tvdb_step")
        raise
    conn.execute("RELEASE tvdb_step")


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


# SQLite primary result codes that mean the storage, not tvdb, is at fault
_STORAGE_CODES = {13: "the disk is full (SQLITE_FULL)", 8: "the database is read-only (SQLITE_READONLY)",
                  10: "disk I/O error (SQLITE_IOERR)"}
_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large"}


def storage_error(exc: BaseException, path: Path | str) -> StorageError | None:
    """The StorageError for `exc` if it means a full, read-only or failing disk, else None."""
    if isinstance(exc, sqlite3.Error):
        reason = _STORAGE_CODES.get(getattr(exc, "sqlite_errorcode", -1) & 0xFF)
    elif isinstance(exc, OSError):
        reason = _STORAGE_ERRNOS.get(exc.errno or -1)
    else:
        reason = None
    return None if reason is None else StorageError(str(path), reason)


def database_file(db: sqlite_utils.Database) -> str:
    """The file of the connection's main database (for messages)."""
    try:
        rows = db.conn.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return "the tvdb database"
    return next((str(r[2]) for r in rows if r[1] == "main" and r[2]), "the tvdb database")


def open_db(path: Path | str) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path` with WAL, a busy timeout and the current schema.

    Raises StorageError for a full or read-only disk, ConfigError for a path that cannot hold a database."""
    try:
        return _open(Path(path))
    except (OSError, sqlite3.DatabaseError) as exc:
        full = storage_error(exc, path)
        if full is not None:
            raise full from None
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
    """`BEGIN IMMEDIATE … COMMIT`, rolled back on any exception. Nested use joins the outer one.

    A full, read-only or failing disk raises StorageError naming the database file (SQLite may
    already have rolled back by itself then, so ROLLBACK is only sent while a transaction is open)."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        full = storage_error(exc, database_file(db))
        if full is None:
            raise
        raise full from exc


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


# Migrations m020–m029 belong to run history and monitoring (tvdb/history).


@migrations()
def m020_run_metrics(db: sqlite_utils.Database) -> None:
    """Per-stage metrics as rows (`job_stages`: one per job and stage, milliseconds of wall time) and
    the LlamaParse credits of each usage row (`usage.credits`), so both are queryable with SQL.

    `job_stages` is backfilled from `jobs.stage_ms_json`; credits of older rows stay NULL."""
    db.table("job_stages").create(
        {"job_id": str, "stage": str, "run_id": str, "correlation_id": str, "ms": float, "updated_at": str},
        pk=("job_id", "stage"),
    )
    db.table("job_stages").create_index(["run_id", "stage"])
    db.execute(
        "INSERT INTO job_stages (job_id, stage, run_id, correlation_id, ms, updated_at) "
        "SELECT j.job_id, s.key, j.run_id, j.correlation_id, s.value, j.updated_at "
        "FROM jobs j, json_each(COALESCE(j.stage_ms_json, '{}')) s"
    )
    db.table("usage").add_column("credits", float)
    db.table("events").create_index(["correlation_id"])
    db.table("events").create_index(["run_id"])


# The views every standard tool (datasette, sqlite-utils, sqlite3) sees at once. Amounts follow the
# reports' rule: a group with a call of unknown price has NULL `spent_usd` / `would_cost_usd` (never a
# smaller number that looks complete); `*_known_usd` hold the priced part.
_USAGE_ALL = """
  SELECT substr(ts, 1, 10) AS day, run_id, service, implementation, 1 AS calls,
         (status = 'error') AS errors, (COALESCE(attempt, 1) > 1) AS retries,
         cost_nusd, would_cost_nusd, (status = 'ok' AND would_cost_nusd IS NULL) AS unknown
  FROM usage
  UNION ALL
  SELECT day, run_id, service, implementation, calls, errors, 0, cost_nusd, would_cost_nusd,
         would_cost_unknown
  FROM usage_daily
"""
_MONEY = """
  CASE WHEN SUM(unknown) > 0 THEN NULL ELSE COALESCE(SUM(cost_nusd), 0) / 1e9 END AS spent_usd,
  CASE WHEN SUM(unknown) > 0 THEN NULL ELSE COALESCE(SUM(would_cost_nusd), 0) / 1e9 END AS would_cost_usd,
  COALESCE(SUM(cost_nusd), 0) / 1e9 AS spent_known_usd,
  COALESCE(SUM(would_cost_nusd), 0) / 1e9 AS would_cost_known_usd,
  SUM(unknown) AS unknown_price_calls
"""
DAILY_SPEND_SQL = f"""
SELECT day, service, implementation, SUM(calls) AS calls, SUM(errors) AS errors, {_MONEY}
FROM ({_USAGE_ALL}) GROUP BY day, service, implementation
"""
RUN_SUMMARY_SQL = f"""
SELECT r.run_id, r.scenario, r.mode, r.status, r.passed, r.started_at, r.finished_at,
  ROUND((julianday(r.finished_at) - julianday(r.started_at)) * 86400.0, 3) AS duration_s,
  COALESCE(j.documents, 0) AS documents, COALESCE(j.complete, 0) AS complete,
  COALESCE(j.failed, 0) AS failed, COALESCE(j.deferred, 0) AS deferred, COALESCE(j.reused, 0) AS reused,
  COALESCE(j.pages, 0) AS pages, COALESCE(j.chunks, 0) AS chunks, COALESCE(j.tokens, 0) AS tokens,
  COALESCE(u.calls, 0) AS calls, COALESCE(u.errors, 0) AS errors, COALESCE(u.retries, 0) AS retries,
  CASE WHEN u.run_id IS NULL THEN 0.0 ELSE u.spent_usd END AS spent_usd,
  CASE WHEN u.run_id IS NULL THEN 0.0 ELSE u.would_cost_usd END AS would_cost_usd,
  COALESCE(u.spent_known_usd, 0.0) AS spent_known_usd,
  COALESCE(u.would_cost_known_usd, 0.0) AS would_cost_known_usd,
  COALESCE(u.unknown_price_calls, 0) AS unknown_price_calls
FROM runs r
LEFT JOIN (
  SELECT run_id, COUNT(*) AS documents, SUM(state = 'complete') AS complete, SUM(state = 'failed') AS failed,
         SUM(state = 'deferred') AS deferred, SUM(reused_from IS NOT NULL) AS reused,
         SUM(COALESCE(pages, 0)) AS pages, SUM(COALESCE(chunks, 0)) AS chunks, SUM(COALESCE(tokens, 0)) AS tokens
  FROM jobs GROUP BY run_id
) j ON j.run_id = r.run_id
LEFT JOIN (
  SELECT run_id, SUM(calls) AS calls, SUM(errors) AS errors, SUM(retries) AS retries, {_MONEY}
  FROM ({_USAGE_ALL}) WHERE run_id IS NOT NULL GROUP BY run_id
) u ON u.run_id = r.run_id
"""


@migrations()
def m021_views(db: sqlite_utils.Database) -> None:
    """`daily_spend` (UTC day × service × implementation) and `run_summary` (one row per run)."""
    db.create_view("daily_spend", DAILY_SPEND_SQL, replace=True)
    db.create_view("run_summary", RUN_SUMMARY_SQL, replace=True)


@migrations()
def m022_job_warnings(db: sqlite_utils.Database) -> None:
    """`jobs.warnings_json`: the parse warnings of a document that completed anyway (a page the
    service could not parse, pypdf's recovery notes), a JSON list of strings, so the run's output,
    `--json` and `runs show` can name them. Older jobs have NULL (their warnings are only in the
    `parsed` event's detail)."""
    db.table("jobs").add_column("warnings_json", str)


# Migrations m030–m039 belong to the service router (tvdb/services/router.py): embedding spaces.


@migrations()
def m030_vector_space(db: sqlite_utils.Database) -> None:
    """Every vector records its embedding space: the implementation that made it (real | mock |
    replay) beside its model and dimensions, so mock and real vectors are never compared.

    Vectors stored before this come from the run's successful embedding row that carried their job
    (mock when none is found: before the router, only mock runs could lack one)."""
    db.table("vectors").add_column("implementation", str)
    db.execute(
        "UPDATE vectors SET implementation = COALESCE((SELECT u.implementation FROM usage u "
        "WHERE u.stage = 'embed' AND u.status = 'ok' AND u.job_ids LIKE '%\"' || vectors.job_id || '\"%' "
        "ORDER BY u.id DESC LIMIT 1), 'mock')"
    )
    db.table("vectors").create_index(["job_id", "implementation"], index_name="idx_vectors_space")


def schema_status(path: Path) -> tuple[list[str], list[str]]:
    """(pending, unknown) migration names of the database at `path`, read-only: pending ones are
    applied on the next open; unknown ones were applied by a newer tvdb. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db = sqlite_utils.Database(conn)
        known = {m.name for m in migrations._migrations}
        applied = [m.name for m in migrations.applied(db)]
        return [m.name for m in migrations.pending(db)], [n for n in applied if n not in known]
    finally:
        conn.close()
