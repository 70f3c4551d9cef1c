"""The usage ledger's tables, owned here with their migrations: `usage` (one row per service
request attempt: tvdb.ledger.usage), `usage_daily` (pruned usage folded per local day:
tvdb.ledger.retention) and `usage_reprices` (old values of repriced rows: tvdb.ledger.reprice).
"""

from __future__ import annotations

import sqlite_utils

from tvdb.storage import Migration


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


M001 = Migration(__name__, _m001_usage)
M003 = Migration(__name__, _m003_budget_index)
M004 = Migration(__name__, _m004_assumed_usage)
M011 = Migration(__name__, _m011_usage_daily)
M012 = Migration(__name__, _m012_reprices)
M015 = Migration(__name__, _m015_usage_daily_assumed)
M020 = Migration(__name__, _m020_usage_credits)
