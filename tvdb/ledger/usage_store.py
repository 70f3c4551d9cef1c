"""The usage ledger's tables, owned here with their migrations, and every statement over them:
`usage` (one row per service request attempt: tvdb.ledger.usage), `usage_daily` (pruned usage
folded per local day: tvdb.ledger.retention) and `usage_reprices` (old values of repriced or
reconciled rows: tvdb.ledger.reprice, tvdb.ledger.reconcile).

Timestamps are UTC ISO-8601 text (`tvdb.clock.iso`), so a window is a text range; money is integer
nano-USD; a NULL cost is an unknown price, never $0. Methods join the caller's open transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlite_utils

from tvdb.clock import iso
from tvdb.storage import Database, Migration, insert, marks, transaction

if TYPE_CHECKING:
    from tvdb.ledger.usage import UsageRow

# the columns usage rows are folded by (tvdb.ledger.retention) and the sums kept per fold
FOLD_GROUP = ("service", "model", "scenario", "implementation", "run_id", "stage", "unit", "price_version")
FOLD_SUMS = ("calls", "errors", "units", "cost_nusd", "would_cost_nusd", "cost_unknown", "would_cost_unknown",
             "assumed_nusd")
# a report's filters: column → values (any of them matches)
Filters = Mapping[str, Sequence[str]]


class UsageStore:
    """SQL for `usage`, `usage_daily` and `usage_reprices`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------------

    def insert(self, row: UsageRow) -> int:
        """Write one usage row (inside the caller's transaction if one is open); returns its id."""
        with transaction(self.db):
            return int(insert(self.db, "usage", row.as_record(), returning="id"))

    # -- budget sums (tvdb.ledger.windows) -------------------------------------------------------

    def spend(self, start: str | None, end: str | None, run_id: str | None, *,
              assumed_only: bool) -> tuple[int, int]:
        """Real spend (cost_nusd; `assumed_only`: its assumed part) in [start, end) — per-call rows,
        and daily aggregates overlapping the range (counted in full) — optionally for one run."""
        rows, rows_args = ["implementation = 'real'", "cost_nusd IS NOT NULL"], []
        aggs: list[str] = ["implementation = 'real'"]
        agg_args: list[str] = []
        if assumed_only:
            rows.append("assumed = 1")
        if start is not None and end is not None:
            rows.append("ts >= ? AND ts < ?")
            rows_args += [start, end]
            aggs.append("start_ts < ? AND end_ts > ?")
            agg_args += [end, start]
        if run_id is not None:
            rows.append("run_id = ?")
            rows_args.append(run_id)
            aggs.append("run_id = ?")
            agg_args.append(run_id)
        column = "assumed_nusd" if assumed_only else "cost_nusd"
        row = self.db.execute(
            f"SELECT (SELECT COALESCE(SUM(cost_nusd), 0) FROM usage WHERE {' AND '.join(rows)}), "
            f"(SELECT COALESCE(SUM({column}), 0) FROM usage_daily WHERE {' AND '.join(aggs)})",
            rows_args + agg_args,
        ).fetchone()
        return int(row[0]), int(row[1])

    def attempts(self, service: str, since: dt.datetime, now: dt.datetime) -> tuple[int, int]:
        """Real request attempts of `service` in (since, now]: (per-call rows, calls of the daily
        aggregates overlapping that range)."""
        row = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM usage WHERE implementation = 'real' AND service = ? AND ts > ?), "
            "(SELECT COALESCE(SUM(calls), 0) FROM usage_daily WHERE implementation = 'real' AND service = ? "
            "AND end_ts > ? AND start_ts <= ?)",
            [service, iso(since), service, iso(since), iso(now)],
        ).fetchone()
        return int(row[0]), int(row[1])

    def attempt_times(self, service: str, since: dt.datetime) -> list[str]:
        """Timestamps (ISO UTC, oldest first) of the per-call rows of real attempts of `service` after `since`."""
        return [str(r[0]) for r in self.db.execute(
            "SELECT ts FROM usage WHERE implementation = 'real' AND service = ? AND ts > ? ORDER BY ts",
            [service, iso(since)])]

    def unknown_price_calls(self, start: str, end: str) -> int:
        """Real calls without a known price in [start, end): rows, plus those of overlapping aggregates."""
        in_rows, in_aggregates = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM usage WHERE implementation = 'real' AND cost_nusd IS NULL "
            "AND ts >= ? AND ts < ?), (SELECT COALESCE(SUM(cost_unknown), 0) FROM usage_daily "
            "WHERE implementation = 'real' AND start_ts < ? AND end_ts > ?)",
            [start, end, end, start],
        ).fetchone()
        return int(in_rows) + int(in_aggregates)

    def errors_by_service(self, start: dt.datetime, end: dt.datetime,
                          implementations: Sequence[str]) -> list[tuple[str, int, int]]:
        """(service, calls, errors) of the calls of `implementations` in [start, end), by service,
        leaving out the calls of runs whose scenario injects faults (their errors are deliberate)."""
        return [(str(r[0]), int(r[1]), int(r[2])) for r in self.db.execute(
            "SELECT service, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) FROM usage "
            f"WHERE ts >= ? AND ts < ? AND implementation IN ({marks(implementations)}) "
            # spec_json is json.dumps of the run's spec: a fault plan reads `"faults": [{`, none `"faults": []`
            # (a LIKE, not json_extract, so SQLite and PostgreSQL agree)
            "AND (run_id IS NULL OR run_id NOT IN (SELECT run_id FROM runs "
            "WHERE spec_json LIKE '%\"faults\": [{%')) "
            "GROUP BY service ORDER BY service",
            [iso(start), iso(end), *implementations],
        )]

    # -- one run (tvdb.scenarios, tvdb.ledger.provenance) ---------------------------------------

    def provenance(self, run_id: str) -> list[tuple[str, str, str | None, int, int]]:
        """(stage, implementation, provenance, calls, errors) of a run's usage rows."""
        return [(str(r[0]), str(r[1]), r[2], int(r[3]), int(r[4])) for r in self.db.execute(
            "SELECT stage, implementation, provenance, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ? GROUP BY stage, implementation, provenance", [run_id])]

    def local_calls(self, run_id: str, stages: Sequence[str]) -> int:
        """Calls of `stages` in the run that a local (mock) implementation served."""
        return int(self.db.execute(
            f"SELECT COUNT(*) FROM usage WHERE run_id = ? AND implementation = 'mock' AND stage IN ({marks(stages)})",
            [run_id, *stages]).fetchone()[0])

    def run_calls(self, run_id: str, implementation: str, *,
                  answered_only: bool = False) -> tuple[int, int | None, int, int]:
        """(calls, sum of would_cost_nusd or None, ok calls without a price, cassette misses) of one
        implementation in a run. A request the cassette could not answer (`cassette_miss`) is counted
        as a miss only: it was neither sent nor answered. `answered_only` counts (and prices) only the
        calls the service answered, with a success or an HTTP error status: what a recording stores
        (a connection cut or a timeout leaves it nothing)."""
        answered = " AND (status = 'ok' OR http_status IS NOT NULL)" if answered_only else ""
        calls, would, unknown, missed = self.db.execute(
            f"SELECT SUM(CASE WHEN error_code IS NOT 'cassette_miss'{answered} THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN error_code IS NOT 'cassette_miss'{answered} THEN would_cost_nusd END), "
            "SUM(CASE WHEN status = 'ok' AND would_cost_nusd IS NULL THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN error_code = 'cassette_miss' THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ? AND implementation = ?", [run_id, implementation]).fetchone()
        return int(calls or 0), None if would is None else int(would), int(unknown or 0), int(missed or 0)

    def run_totals(self, run_id: str) -> tuple[int, int, int]:
        """(cost_nusd, would_cost_nusd, ok calls without a price) of a run."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(cost_nusd), 0), COALESCE(SUM(would_cost_nusd), 0), "
            "SUM(CASE WHEN would_cost_nusd IS NULL AND status = 'ok' THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ?", [run_id],
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2] or 0)

    def run_requests(self, run_id: str) -> dict[str, int]:
        """Request attempts of a run by "<stage>/<implementation>", sorted."""
        return {f"{r[0]}/{r[1]}": int(r[2]) for r in self.db.execute(
            "SELECT stage, implementation, COUNT(*) FROM usage WHERE run_id = ? "
            "GROUP BY stage, implementation ORDER BY stage, implementation", [run_id])}

    def run_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The usage rows of `run_id` (a run or a session), oldest first, as dicts (columns: tvdb.ledger.usage)."""
        return list(self.db.query("SELECT * FROM usage WHERE run_id = ? ORDER BY id", [run_id]))

    def by_implementation(self, run_id: str) -> list[dict[str, Any]]:
        """One dict per (service, implementation) of a run or session: requests (rows, errors included),
        errors, tokens, pages, credits (None without LlamaParse rows), cost_nusd / would_cost_nusd (None
        when a successful row has no known price)."""
        rows = self.db.execute(
            "SELECT service, implementation, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), "
            "COALESCE(SUM(CASE WHEN unit = 'tokens' AND status = 'ok' THEN units END), 0), "
            "COALESCE(SUM(CASE WHEN unit = 'pages' THEN units END), 0), SUM(credits), "
            "COALESCE(SUM(cost_nusd), 0), COALESCE(SUM(would_cost_nusd), 0), "
            "SUM(CASE WHEN would_cost_nusd IS NULL AND status = 'ok' THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ? GROUP BY service, implementation ORDER BY service, implementation",
            [run_id]).fetchall()
        return [{"service": r[0], "implementation": r[1], "requests": int(r[2]), "errors": int(r[3] or 0),
                 "tokens": int(r[4]), "pages": float(r[5]), "credits": None if r[6] is None else float(r[6]),
                 "cost_nusd": None if r[9] else int(r[7]), "would_cost_nusd": None if r[9] else int(r[8])}
                for r in rows]

    def by_correlation(self, run_id: str,
                       correlation_id: str | None = None) -> list[tuple[str, int, int, int, int, int]]:
        """(correlation_id, would_cost_nusd of ok calls, ok calls without a price, tokens, pages, attempts)
        per correlation id of a run (or only `correlation_id`)."""
        only = "" if correlation_id is None else " AND correlation_id = ?"
        return [(str(r[0]), int(r[1]), int(r[2] or 0), int(r[3]), int(r[4]), int(r[5])) for r in self.db.execute(
            "SELECT correlation_id, COALESCE(SUM(CASE WHEN status = 'ok' THEN would_cost_nusd END), 0), "
            "SUM(CASE WHEN status = 'ok' AND would_cost_nusd IS NULL THEN 1 ELSE 0 END), "
            "COALESCE(SUM(CASE WHEN status = 'ok' AND unit = 'tokens' THEN units END), 0), "
            "COALESCE(SUM(CASE WHEN status = 'ok' AND unit = 'pages' THEN units END), 0), COUNT(*) "
            f"FROM usage WHERE run_id = ? AND correlation_id IS NOT NULL{only} GROUP BY correlation_id",
            [run_id, *([] if correlation_id is None else [correlation_id])])]

    def run_embed_cost(self, run_id: str) -> tuple[int, int]:
        """(would_cost_nusd, calls without a price) of a run's successful embedding calls."""
        nusd, unknown = self.db.execute(
            "SELECT COALESCE(SUM(would_cost_nusd), 0), SUM(CASE WHEN would_cost_nusd IS NULL THEN 1 ELSE 0 END) "
            "FROM usage WHERE run_id = ? AND stage = 'embed' AND status = 'ok'", [run_id]).fetchone()
        return int(nusd), int(unknown or 0)

    def run_parse_costs(self, run_id: str) -> dict[str, tuple[int, int]]:
        """job_id → (would_cost_nusd, calls without a price) of a run's successful parse calls."""
        return {r[0]: (int(r[1]), int(r[2])) for r in self.db.execute(
            "SELECT job_id, COALESCE(SUM(would_cost_nusd), 0), "
            "SUM(CASE WHEN would_cost_nusd IS NULL THEN 1 ELSE 0 END) FROM usage "
            "WHERE run_id = ? AND stage = 'parse' AND status = 'ok' GROUP BY job_id", [run_id])}

    def count_requests(self, run_id: str, service: str, *, stage: str | None = None, status: str | None = None,
                       retries: bool = False) -> int:
        """Request attempts of `service` in a run (of `stage`; with `status`; only retries: attempt > 1)."""
        where, args = ["run_id = ?", "service = ?"], [run_id, service]
        if stage:
            where.append("stage = ?")
            args.append(stage)
        if status:
            where.append("status = ?")
            args.append(status)
        if retries:
            where.append("attempt > 1")
        return int(self.db.execute(f"SELECT COUNT(*) FROM usage WHERE {' AND '.join(where)}", args).fetchone()[0])

    # -- reports (tvdb.ledger.reports) ----------------------------------------------------------

    def report_rows(self, since: str | None, until: str | None, filters: Filters) -> Iterator[tuple[Any, ...]]:
        """(ts, service, model, scenario, implementation, run_id, status, cost_nusd, would_cost_nusd, units)
        of the per-call rows in [since, until) matching `filters`."""
        where, args = _filter_clauses(filters, "ts", since, until)
        yield from self.db.execute(
            "SELECT ts, service, model, scenario, implementation, run_id, status, cost_nusd, would_cost_nusd, "
            f"units FROM usage{where}", args)

    def report_daily(self, since: str | None, until: str | None, filters: Filters) -> Iterator[tuple[Any, ...]]:
        """(day, service, model, scenario, implementation, run_id, calls, errors, cost_nusd, would_cost_nusd,
        cost_unknown, would_cost_unknown, units) of the daily aggregates starting in [since, until)."""
        where, args = _filter_clauses(filters, "start_ts", since, until)
        yield from self.db.execute(
            "SELECT day, service, model, scenario, implementation, run_id, calls, errors, cost_nusd, "
            f"would_cost_nusd, cost_unknown, would_cost_unknown, units FROM usage_daily{where}", args)

    # -- retention (tvdb.ledger.retention) -----------------------------------------------------

    def rows_before(self, cutoff: str) -> list[tuple[Any, ...]]:
        """(ts, status, units, cost_nusd, would_cost_nusd, assumed, *FOLD_GROUP) of the rows before `cutoff`."""
        return list(self.db.execute(
            f"SELECT ts, status, units, cost_nusd, would_cost_nusd, assumed, {', '.join(FOLD_GROUP)} "
            "FROM usage WHERE ts < ?", [cutoff]))

    def fold(self, cutoff: str, aggregates: Sequence[Sequence[Any]]) -> None:
        """Add `aggregates` (key, day, timezone, start_ts, end_ts, *FOLD_GROUP, *FOLD_SUMS) to `usage_daily`
        and delete the rows before `cutoff` they were folded from, in one transaction."""
        columns = ["key", "day", "timezone", "start_ts", "end_ts", *FOLD_GROUP, *FOLD_SUMS]
        updates = ", ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in FOLD_SUMS)
        with transaction(self.db):
            self.db.executemany(
                f"INSERT INTO usage_daily ({', '.join(columns)}) VALUES ({marks(columns)}) "
                f"ON CONFLICT (key) DO UPDATE SET {updates}", aggregates)
            self.db.execute("DELETE FROM usage WHERE ts < ?", [cutoff])

    # -- repricing and reconciling (tvdb.ledger.reprice, tvdb.ledger.reconcile) ----------------

    def priced_rows(self, from_version: str | None) -> Iterator[tuple[str, str, tuple[Any, ...]]]:
        """("usage" | "usage_daily", row ref, (service, model, implementation, units, unit, cost_nusd,
        would_cost_nusd, price_version)) of every row with units, optionally of one price version (None:
        all). A folded amount made only of unknown prices is unknown (NULL), not its stored 0 sum."""
        cond, args = "units > 0", []
        if from_version is not None:
            cond += " AND price_version = ?"
            args.append(from_version)
        cols = "service, model, implementation, units, unit, cost_nusd, would_cost_nusd, price_version"
        for rid, *rest in self.db.execute(f"SELECT id, {cols} FROM usage WHERE {cond} ORDER BY id", args).fetchall():
            yield "usage", str(rid), tuple(rest)
        daily_cols = cols.replace(
            "cost_nusd, would_cost_nusd",
            "CASE WHEN cost_unknown = calls THEN NULL ELSE cost_nusd END, "
            "CASE WHEN would_cost_unknown = calls THEN NULL ELSE would_cost_nusd END",
        )
        for key, *rest in self.db.execute(f"SELECT key, {daily_cols} FROM usage_daily WHERE {cond}", args).fetchall():
            yield "usage_daily", str(key), tuple(rest)

    def record_old_values(self, reprice_id: str, at: str, source: str, ref: str, old: tuple[Any, Any, Any],
                          new: tuple[Any, Any, Any]) -> None:
        """Keep a row's (price_version, cost_nusd, would_cost_nusd) before and after a reprice."""
        self.db.execute(
            "INSERT INTO usage_reprices (reprice_id, repriced_at, source, row_ref, old_price_version, "
            "old_cost_nusd, old_would_cost_nusd, new_price_version, new_cost_nusd, new_would_cost_nusd) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [reprice_id, at, source, ref, *old, *new])

    def set_cost(self, source: str, ref: str, cost_nusd: int, would_cost_nusd: int, version: str | None, *,
                 assumed: bool | None = None) -> None:
        """Set a usage row's (id `ref`) or daily aggregate's (key `ref`) amounts and price version;
        `assumed=False` also clears a usage row's assumed flag."""
        from tvdb.ledger.prices import nusd_to_usd

        if source == "usage":
            extra = "" if assumed is None else ", assumed = ?"
            self.db.execute(
                "UPDATE usage SET cost_nusd = ?, would_cost_nusd = ?, cost_usd = ?, would_cost_usd = ?, "
                f"price_version = ?{extra} WHERE id = ?",
                [cost_nusd, would_cost_nusd, nusd_to_usd(cost_nusd), nusd_to_usd(would_cost_nusd), version,
                 *([] if assumed is None else [int(assumed)]), int(ref)])
        else:
            self.db.execute(
                "UPDATE usage_daily SET cost_nusd = ?, would_cost_nusd = ?, cost_unknown = 0, "
                "would_cost_unknown = 0, price_version = ? WHERE key = ?",
                [cost_nusd, would_cost_nusd, version, ref])

    def reprice_history(self, reprice_id: str) -> list[dict[str, object]]:
        """The old and new values recorded by one reprice or reconcile run, in row order."""
        return list(self.db.query("SELECT * FROM usage_reprices WHERE reprice_id = ? ORDER BY id", [reprice_id]))

    def billed_group(self, service: str, model: str, start: str, end: str) -> tuple[
            int, list[tuple[int, int, int | None, str | None]], int, int]:
        """For one (service, model) in [start, end) of real calls: (known cost_nusd of rows not
        assumed, assumed rows as (id, cost_nusd, would_cost_nusd, price_version), known and assumed
        nano-USD of daily aggregates overlapping the range)."""
        where = "implementation = 'real' AND service = ? AND model = ? AND ts >= ? AND ts < ?"
        args = [service, model, start, end]
        known = int(self.db.execute(f"SELECT COALESCE(SUM(cost_nusd), 0) FROM usage WHERE {where} AND assumed = 0",
                                    args).fetchone()[0])
        assumed = [(int(r[0]), int(r[1] or 0), r[2], r[3]) for r in self.db.execute(
            f"SELECT id, cost_nusd, would_cost_nusd, price_version FROM usage WHERE {where} AND assumed = 1 "
            "ORDER BY id", args)]
        folded_known, folded_assumed = (int(v) for v in self.db.execute(
            "SELECT COALESCE(SUM(cost_nusd - assumed_nusd), 0), COALESCE(SUM(assumed_nusd), 0) FROM usage_daily "
            "WHERE implementation = 'real' AND service = ? AND model = ? AND start_ts < ? AND end_ts > ?",
            [service, model, end, start]).fetchone())
        return known, assumed, folded_known, folded_assumed


def _filter_clauses(filters: Filters, ts_column: str, since: str | None,
                    until: str | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for column, values in filters.items():
        if values:
            where.append(f"{column} IN ({marks(values)})")
            args += list(values)
    if since is not None:
        where.append(f"{ts_column} >= ?")
        args.append(since)
    if until is not None:
        where.append(f"{ts_column} < ?")
        args.append(until)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _m001_usage(db: sqlite_utils.Database) -> None:
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


def _m003_budget_index(db: sqlite_utils.Database) -> None:
    """A covering index for the two sums every budget check runs (`tvdb.ledger.budget`): today's
    real spend (implementation, ts range, cost_nusd) and a service's real attempts in the last hour."""
    db.table("usage").create_index(
        ["implementation", "ts", "service", "cost_nusd"], index_name="idx_usage_budget"
    )


def _m004_assumed_usage(db: sqlite_utils.Database) -> None:
    """Assumed spend (tvdb.ledger.guard): a usage row whose cost is the estimate of a request that may
    have been billed (`assumed` = 1, `reservation_id` its reservation)."""
    db.table("usage").add_column("assumed", int, not_null_default=0)
    db.table("usage").add_column("reservation_id", str)
    db.table("usage").create_index(["reservation_id"])


def _m011_usage_daily(db: sqlite_utils.Database) -> None:
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


def _m012_reprices(db: sqlite_utils.Database) -> None:
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


def _m015_usage_daily_assumed(db: sqlite_utils.Database) -> None:
    """Assumed spend folded into daily aggregates (part of `cost_nusd`, shown apart)."""
    db.table("usage_daily").add_column("assumed_nusd", int, not_null_default=0)


def _m020_usage_credits(db: sqlite_utils.Database) -> None:
    """The LlamaParse credits of each usage row (`usage.credits`); credits of older rows stay NULL."""
    db.table("usage").add_column("credits", float)


# PostgreSQL's steps (tvdb.storage.postgres), the same schema in its dialect: bigint for INTEGER,
# double precision for REAL, bytea for BLOB, identity columns for integer ids (tests/test_pg_schema.py).

_PG_M001 = (
    "CREATE TABLE usage (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, ts text, run_id text, job_id text, "
    "job_ids text, correlation_id text, scenario text, stage text, service text, implementation text, "
    "provenance text, model text, units double precision, unit text, usage_json text, "
    "cost_usd double precision, would_cost_usd double precision, cost_nusd bigint, would_cost_nusd bigint, "
    "price_version text, status text, error_code text, http_status bigint, latency_ms double precision, "
    "request_id text, attempt bigint)",
    "CREATE INDEX idx_usage_run_id ON usage (run_id)",
    "CREATE INDEX idx_usage_ts ON usage (ts)",
)

_PG_M003 = (
    "CREATE INDEX idx_usage_budget ON usage (implementation, ts, service, cost_nusd)",
)

_PG_M004 = (
    "ALTER TABLE usage ADD COLUMN assumed bigint NOT NULL DEFAULT 0, ADD COLUMN reservation_id text",
    "CREATE INDEX idx_usage_reservation_id ON usage (reservation_id)",
)

_PG_M011 = (
    "CREATE TABLE usage_daily (key text PRIMARY KEY, day text, timezone text, start_ts text, end_ts text, "
    "service text, model text, scenario text, implementation text, run_id text, stage text, unit text, "
    "price_version text, calls bigint, errors bigint, units double precision, cost_nusd bigint, "
    "would_cost_nusd bigint, cost_unknown bigint, would_cost_unknown bigint)",
    "CREATE INDEX idx_usage_daily_start_ts ON usage_daily (start_ts)",
)

_PG_M012 = (
    "CREATE TABLE usage_reprices (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, reprice_id text, "
    "repriced_at text, source text, row_ref text, old_price_version text, old_cost_nusd bigint, "
    "old_would_cost_nusd bigint, new_price_version text, new_cost_nusd bigint, new_would_cost_nusd bigint)",
    "CREATE INDEX idx_usage_reprices_reprice_id ON usage_reprices (reprice_id)",
    "CREATE INDEX idx_usage_reprices_source_row_ref ON usage_reprices (source, row_ref)",
)

_PG_M015 = (
    "ALTER TABLE usage_daily ADD COLUMN assumed_nusd bigint NOT NULL DEFAULT 0",
)

_PG_M020 = (
    "ALTER TABLE usage ADD COLUMN credits double precision",
)


M001 = Migration(__name__, _m001_usage, postgresql=_PG_M001)
M003 = Migration(__name__, _m003_budget_index, postgresql=_PG_M003)
M004 = Migration(__name__, _m004_assumed_usage, postgresql=_PG_M004)
M011 = Migration(__name__, _m011_usage_daily, postgresql=_PG_M011)
M012 = Migration(__name__, _m012_reprices, postgresql=_PG_M012)
M015 = Migration(__name__, _m015_usage_daily_assumed, postgresql=_PG_M015)
M020 = Migration(__name__, _m020_usage_credits, postgresql=_PG_M020)
