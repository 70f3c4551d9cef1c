"""The SQLite engine: one `tvdb.db` file, opened in WAL mode with a busy timeout so that several
`tvdb` processes can share it; the schema is created and evolved by the named migration history
(`tvdb.storage.migrations`, applied through sqlite-utils).

`SqliteDatabase` is a `sqlite_utils.Database` (tests, migrations and `sqlite-utils` users keep its
whole API) that also implements the engine-neutral `tvdb.storage.base.Database` the stores use.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from tvdb.errors import ConfigError, StorageError
from tvdb.storage.base import Engine, Params
from tvdb.storage.migrations import History

BUSY_TIMEOUT_MS = 30_000
PAGE_SIZE = 16_384  # bytes, for new database files (see _open)

# SQLite primary result codes that mean the storage, not tvdb, is at fault
_STORAGE_CODES = {13: "the disk is full (SQLITE_FULL)", 8: "the database is read-only (SQLITE_READONLY)",
                  10: "disk I/O error (SQLITE_IOERR)"}
# SQLITE_BUSY / SQLITE_LOCKED once the busy timeout has passed: another process holds the write lock.
# The run stops resumably (as for a full disk) instead of failing each document it was working on.
_LOCKED_CODES = {5: "SQLITE_BUSY", 6: "SQLITE_LOCKED"}
_LOCKED_FIX = ("wait until the other process using the file ends (another tvdb, or a tool with a write "
               "transaction open; `fuser` on the file names it)")
_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EFBIG: "file too large"}


class SqliteDatabase(sqlite_utils.Database):
    """A tvdb SQLite connection: `sqlite_utils.Database` plus the `tvdb.storage.Database` methods."""

    @property
    def engine(self) -> Engine:
        return "sqlite"

    @property
    def location(self) -> str:
        rows = self.conn.execute("PRAGMA database_list").fetchall()
        return next((str(r[2]) for r in rows if r[1] == "main" and r[2]), "an in-memory database")

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def executemany(self, sql: str, rows: Iterable[Params], /) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def select(self, sql: str, params: Params = (), /) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def transaction(self) -> Any:
        return transaction(self)

    def savepoint(self) -> Any:
        return savepoint(self)

    def lock_budget_window(self) -> None:
        # BEGIN IMMEDIATE (`transaction`) already holds the file's one write lock: every other
        # writer, in any process, waits for this transaction to end.
        if not self.conn.in_transaction:
            raise RuntimeError("lock_budget_window() needs an open transaction")


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


def storage_error(exc: BaseException, path: Path | str) -> StorageError | None:
    """The StorageError for `exc` if it means a full, read-only or failing disk, or a write lock
    another process held past the busy timeout; else None."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
        if code in _LOCKED_CODES:
            return StorageError(str(path), f"another process has held the database's write lock for over "
                                f"{BUSY_TIMEOUT_MS // 1000} s ({_LOCKED_CODES[code]})", fix=_LOCKED_FIX)
        reason = _STORAGE_CODES.get(code)
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


def open_sqlite(path: Path | str, history: History) -> SqliteDatabase:
    """Open (creating if needed) the database at `path` with WAL, a busy timeout and every pending
    step of `history` applied.

    Raises StorageError for a full or read-only disk, ConfigError for a path that cannot hold a database."""
    try:
        return _open(Path(path), history)
    except (OSError, sqlite3.DatabaseError) as exc:
        full = storage_error(exc, path)
        if full is not None:
            raise full from None
        raise ConfigError(
            f"cannot open the tvdb database {path}: {exc}; point --data-dir / TVDB_DATA_DIR (or TVDB_DB_PATH) "
            "at a directory of its own"
        ) from None


def _open(path: Path, history: History) -> SqliteDatabase:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `transaction`), so a
    # writer takes the lock up front instead of failing half-way with "database is locked".
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # A new file gets 16 KiB pages: a 1536-dimension float32 vector (6 KiB) then fits in its row's
    # page instead of spilling into overflow pages, and writing 20,000 of them took 0.92 s instead
    # of 1.28-1.53 s with the 4 KiB default. An existing file keeps its page size (a no-op there).
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = SqliteDatabase(conn)
    migrations = history.sqlite()
    # a read first: a file that is up to date opens without the write lock, so `tvdb runs`, reports
    # and doctor read while another process holds it (WAL lets readers in); the steps, if any, are
    # applied under the lock, where sqlite-utils skips those another process applied meanwhile
    if migrations.pending(db):
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


def schema_status(path: Path, history: History) -> tuple[list[str], list[str]]:
    """(pending, unknown) migration names of the database at `path`, read-only: pending ones are
    applied on the next open; unknown ones were applied by a newer tvdb. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db = sqlite_utils.Database(conn)
        migrations = history.sqlite()
        known = set(history.names)
        applied = [m.name for m in migrations.applied(db)]
        return [m.name for m in migrations.pending(db)], [n for n in applied if n not in known]
    finally:
        conn.close()
