"""The PostgreSQL engine (`database_url` / `TVDB_DATABASE_URL`): a psycopg 3 connection pool behind
the engine-neutral `tvdb.storage.base.Database` (`execute` with `?` placeholders and tuple rows,
`query` with dict rows, `transaction()` that nested code joins, savepoints, the budget lock).

    db = PgDatabase("postgresql://tvdb:secret@db.example/tvdb")   # raises ConfigError / StorageError
    with db.transaction():                                         # BEGIN (READ COMMITTED)
        db.lock_budget_window()                                    # pg_advisory_xact_lock(…)
        db.execute("SELECT COUNT(*) FROM reservations WHERE status = ?", ["active"]).fetchone()[0]

Each thread gets its own pooled connection for the length of a transaction (psycopg_pool), so
concurrent runs in one process share a few connections; outside a transaction a statement borrows
a connection and autocommits. A lost connection or an unreachable server raises StorageError (exit
4) with the password masked; the server rolls back whatever the transaction had done.
psycopg docs: https://www.psycopg.org/psycopg3/docs/ — pool: https://www.psycopg.org/psycopg3/docs/advanced/pool.html
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from tvdb.errors import ConfigError, StorageError
from tvdb.redaction import redact, redact_url
from tvdb.storage.migrations import History

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

EXTRA_HINT = ("install the PostgreSQL extra: pip install -e '.[postgres]' in a tvdb checkout, or "
              "pip install 'psycopg[binary]>=3.1.4' 'psycopg_pool>=3.1'")
SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 10
# The one lock every budget decision takes (tvdb.ledger.budget): a reservation counts against the
# day, its run and the service's hour at once, so one key for the whole ledger, never one per window
# (several keys taken in varying order could deadlock).
BUDGET_LOCK = "tvdb.budget"
MIGRATION_LOCK = "tvdb.migrations"


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(SCHEMES)


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` (CRC32, so every process agrees)."""
    return zlib.crc32(name.encode()) - 2**31


def import_psycopg() -> Any:
    """psycopg and psycopg_pool, or a ConfigError that names the extra to install."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigError(
            f"database_url is a PostgreSQL URL but psycopg is not installed ({exc.name} missing): {EXTRA_HINT}"
        ) from None
    return psycopg, psycopg_pool


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`?` placeholders → psycopg's `%s`, and a literal `%` → `%%`; quoted text is left alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Cursor:
    """The rows of one statement as tuples (already fetched: the connection went back to the pool)."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self._rowcount = rowcount

    @property
    def rowcount(self) -> int:
        return self._rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgDatabase:
    """A PostgreSQL ledger database: pooled connections, `?` SQL, joinable transactions.

    `url` is a libpq URL (postgresql://user:password@host:port/dbname?sslmode=...); its password is
    never shown (`self._location` is the masked form every message uses). `max_size` bounds the
    connections this process opens.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        psycopg, psycopg_pool = import_psycopg()
        self._psycopg = psycopg
        self._url = url  # holds the password: never printed (see `location`)
        self._location = redact_url(url)
        self._password = urlsplit(url).password
        self._local = threading.local()
        self._pool: ConnectionPool = psycopg_pool.ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=connect_timeout_s,
            kwargs={"autocommit": True, "connect_timeout": int(connect_timeout_s)},
        )
        try:
            # one direct connection first: a wrong password or a host that is down is reported at
            # once with the server's reason, not as a pool timeout after retries
            psycopg.connect(url, connect_timeout=int(connect_timeout_s)).close()
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except self._psycopg.OperationalError as exc:  # PoolTimeout: unreachable, or refused us
            self._pool.close()
            raise self._unreachable(exc) from None

    def migrate(self, history: History) -> list[str]:
        """Apply the pending steps of `history` (each part's `postgresql` statements, in order) in one
        transaction under the migration advisory lock, so several processes opening a new database
        at once run each step exactly once; returns the names applied now. Applied names are kept
        in `_tvdb_migrations (name, applied_at)`."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(MIGRATION_LOCK)])
                conn.execute("CREATE TABLE IF NOT EXISTS _tvdb_migrations (name text PRIMARY KEY, applied_at text)")
                done = {r[0] for r in conn.execute("SELECT name FROM _tvdb_migrations")}
                applied: list[str] = []
                for step in history.steps:
                    if step.name in done:
                        continue
                    for part in step.parts:
                        if not part.postgresql:
                            raise RuntimeError(f"migration {step.name} of {part.owner} has no PostgreSQL statements")
                        for statement in part.postgresql:
                            conn.execute(statement.encode())  # our own constant DDL, no parameters
                    conn.execute("INSERT INTO _tvdb_migrations (name, applied_at) VALUES (%s, %s)",
                                 [step.name, _utc_now()])
                    applied.append(step.name)
                return applied
        except self._psycopg.OperationalError as exc:
            raise self.lost(exc) from None

    # -- the interface ------------------------------------------------------------------------

    @property
    def engine(self) -> Literal["postgresql"]:
        return "postgresql"

    @property
    def location(self) -> str:
        """The URL without its password (every message uses this form)."""
        return self._location

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        """Run one statement (`?` placeholders); joins the thread's open transaction, else autocommits."""
        with self._connection() as conn:
            try:
                cur = conn.execute(translate(sql), params or None)
                rows = cur.fetchall() if cur.description is not None else []
                self._local.names = [d.name for d in cur.description or ()]
                return Cursor(rows, cur.rowcount)
            except self._psycopg.OperationalError as exc:
                raise self.lost(exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor:
        with self._connection() as conn:
            try:
                with conn.cursor() as cur:
                    cur.executemany(translate(sql), rows)
                    return Cursor([], cur.rowcount)
            except self._psycopg.OperationalError as exc:
                raise self.lost(exc) from None

    def query(self, sql: str, params: Sequence[Any] = (), /) -> Iterator[dict[str, Any]]:
        """Run one SELECT; rows as dicts keyed by column name."""
        cur = self.execute(sql, params)
        names = self._local.names
        return iter([dict(zip(names, row, strict=True)) for row in cur.fetchall()])

    def select(self, sql: str, params: Sequence[Any] = (), /) -> list[dict[str, Any]]:
        """`query` as a list (no savepoint here to spare: psycopg runs the statement as it is)."""
        return list(self.query(sql, params))

    def lock_budget_window(self) -> None:
        """Inside a transaction: `pg_advisory_xact_lock` on the ledger's one budget key, held until
        COMMIT/ROLLBACK (the server also drops it when the client dies or the connection is lost)."""
        if not self.in_transaction:
            raise RuntimeError("lock_budget_window() needs an open transaction")
        if getattr(self._local, "locked", False):
            return  # already held by this transaction: spare the round trip
        self.execute("SELECT pg_advisory_xact_lock(?)", [lock_key(BUDGET_LOCK)])
        self._local.locked = True

    @contextmanager
    def transaction(self) -> Iterator[PgDatabase]:
        """BEGIN … COMMIT on one pooled connection (READ COMMITTED), rolled back on any exception;
        nested use joins the outer transaction. A lost connection raises StorageError."""
        if self.in_transaction:
            yield self
            return
        try:
            with self._pool.connection() as conn:
                self._local.conn, self._local.locked = conn, False
                try:
                    with conn.transaction():
                        yield self
                finally:
                    self._local.conn, self._local.locked = None, False
        except self._psycopg.OperationalError as exc:  # PoolTimeout included
            raise self.lost(exc) from None

    @contextmanager
    def savepoint(self) -> Iterator[PgDatabase]:
        """Inside `transaction`: the block's writes are undone if it raises, kept otherwise."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("savepoint() needs an open transaction")
        with conn.transaction():  # psycopg nests as SAVEPOINT / RELEASE / ROLLBACK TO
            yield self

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PgDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        try:
            with self._pool.connection() as pooled:
                yield pooled
        except self._psycopg.OperationalError as exc:  # PoolTimeout included
            raise self.lost(exc) from None

    def lost(self, exc: BaseException) -> StorageError:
        """The StorageError for a connection that failed mid-statement (the server rolled back)."""
        if _is_pool_timeout(exc):
            return self._unreachable(exc)
        return StorageError(
            self._location, f"the connection to PostgreSQL failed ({self._detail(exc)}); the open transaction "
            "was rolled back, so nothing half-written was kept", fix="check the server and the network")

    def _unreachable(self, exc: BaseException) -> StorageError:
        return StorageError(self._location, f"cannot connect to PostgreSQL ({self._detail(exc)})",
                            fix="check database_url / TVDB_DATABASE_URL and that the server is up",
                            action="cannot reach")

    def _detail(self, exc: BaseException) -> str:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return redact(first, [self._password])


def _is_pool_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ in ("PoolTimeout", "PoolClosed", "TooManyRequests")


def open_postgres(url: str, history: History, *, max_size: int = 8) -> PgDatabase:
    """Connect to the PostgreSQL database at `url` and apply every pending step of `history`.

    Raises ConfigError (psycopg missing: names the extra) or StorageError (unreachable, refused)."""
    db = PgDatabase(url, max_size=max_size)
    try:
        db.migrate(history)
    except BaseException:
        db.close()
        raise
    return db


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def schema_status(url: str, history: History, *,
                  connect_timeout_s: float = CONNECT_TIMEOUT_S) -> tuple[str, list[str], list[str]]:
    """(server version, pending, unknown) migration names of the PostgreSQL ledger at `url`, read-only
    (for `tvdb doctor`): pending ones are applied on the next open; unknown ones by a newer tvdb.

    Raises ConfigError (no psycopg) or StorageError (cannot connect; the password never shown)."""
    psycopg, _ = import_psycopg()
    try:
        with psycopg.connect(url, connect_timeout=int(connect_timeout_s)) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])
            exists = conn.execute("SELECT to_regclass('_tvdb_migrations') IS NOT NULL").fetchone()[0]
            applied = [r[0] for r in conn.execute("SELECT name FROM _tvdb_migrations")] if exists else []
    except psycopg.OperationalError as exc:
        password = urlsplit(url).password
        text = str(exc).strip()
        detail = redact(text.splitlines()[0] if text else type(exc).__name__, [password])
        raise StorageError(redact_url(url), f"cannot connect to PostgreSQL ({detail})",
                           fix="check database_url / TVDB_DATABASE_URL and that the server is up",
                           action="cannot reach") from None
    known = history.names
    return version, [n for n in known if n not in applied], [n for n in applied if n not in known]
