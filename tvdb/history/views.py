"""The SQL views of run history and spend, owned here with their migration: `daily_spend` (UTC day ×
service × implementation) and `run_summary` (one row per run, read by tvdb.history.store).

SQLite SQL (`julianday`, boolean sums) for SQLite; PostgreSQL gets its own text of both views (`_PG_M021`),
tested to give the same rows (tests/test_pg_schema.py).
"""

from __future__ import annotations

import sqlite_utils

from tvdb.storage import Migration

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
# A run's duration counts the time it worked, not the time it lay interrupted: the segments before
# its latest resume (`runs.active_s`, m024) plus the latest one. m021 made the view before those columns.
_RUN_SUMMARY = f"""
SELECT r.run_id, r.scenario, r.mode, r.status, r.passed, r.started_at, r.finished_at,
  ROUND(DURATION, 3) AS duration_s,
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
RUN_SUMMARY_SQL = _RUN_SUMMARY.replace(
    "DURATION", "COALESCE(r.active_s, 0)"
    " + (julianday(r.finished_at) - julianday(COALESCE(r.resumed_at, r.started_at))) * 86400.0")
_M021_RUN_SUMMARY_SQL = _RUN_SUMMARY.replace(
    "DURATION", "(julianday(r.finished_at) - julianday(r.started_at)) * 86400.0")


def _m021_views(db: sqlite_utils.Database) -> None:
    """`daily_spend` (UTC day × service × implementation) and `run_summary` (one row per run)."""
    db.create_view("daily_spend", DAILY_SPEND_SQL, replace=True)
    db.create_view("run_summary", _M021_RUN_SUMMARY_SQL, replace=True)


def _m024_active_duration(db: sqlite_utils.Database) -> None:
    """`run_summary.duration_s` without the time a run lay interrupted (`runs.active_s`, m024)."""
    db.create_view("run_summary", RUN_SUMMARY_SQL, replace=True)


# The same views in PostgreSQL's dialect: booleans counted with ::int, sums cast back to
# bigint (SQLite's integers) and USD as double precision, durations from timestamptz.
_PG_USAGE_ALL = """
  SELECT substr(ts, 1, 10) AS day, run_id, service, implementation, 1 AS calls,
         (status = 'error')::int AS errors, (COALESCE(attempt, 1) > 1)::int AS retries,
         cost_nusd, would_cost_nusd, (status = 'ok' AND would_cost_nusd IS NULL)::int AS unknown
  FROM usage
  UNION ALL
  SELECT day, run_id, service, implementation, calls, errors, 0, cost_nusd, would_cost_nusd,
         would_cost_unknown
  FROM usage_daily
"""
_PG_MONEY = """
  CASE WHEN SUM(unknown) > 0 THEN NULL ELSE COALESCE(SUM(cost_nusd), 0)::float8 / 1e9 END AS spent_usd,
  CASE WHEN SUM(unknown) > 0 THEN NULL ELSE COALESCE(SUM(would_cost_nusd), 0)::float8 / 1e9 END AS would_cost_usd,
  COALESCE(SUM(cost_nusd), 0)::float8 / 1e9 AS spent_known_usd,
  COALESCE(SUM(would_cost_nusd), 0)::float8 / 1e9 AS would_cost_known_usd,
  SUM(unknown)::bigint AS unknown_price_calls
"""
PG_DAILY_SPEND_SQL = f"""
SELECT day, service, implementation, SUM(calls)::bigint AS calls, SUM(errors)::bigint AS errors, {_PG_MONEY}
FROM ({_PG_USAGE_ALL}) u GROUP BY day, service, implementation
"""
_PG_RUN_SUMMARY = f"""
SELECT r.run_id, r.scenario, r.mode, r.status, r.passed, r.started_at, r.finished_at,
  ROUND((DURATION)::numeric, 3)::float8 AS duration_s,
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
  SELECT run_id, COUNT(*) AS documents, SUM((state = 'complete')::int)::bigint AS complete,
         SUM((state = 'failed')::int)::bigint AS failed, SUM((state = 'deferred')::int)::bigint AS deferred,
         SUM((reused_from IS NOT NULL)::int)::bigint AS reused, SUM(COALESCE(pages, 0))::bigint AS pages,
         SUM(COALESCE(chunks, 0))::bigint AS chunks, SUM(COALESCE(tokens, 0))::bigint AS tokens
  FROM jobs GROUP BY run_id
) j ON j.run_id = r.run_id
LEFT JOIN (
  SELECT run_id, SUM(calls)::bigint AS calls, SUM(errors)::bigint AS errors, SUM(retries)::bigint AS retries,
         {_PG_MONEY}
  FROM ({_PG_USAGE_ALL}) u0 WHERE run_id IS NOT NULL GROUP BY run_id
) u ON u.run_id = r.run_id
"""
PG_RUN_SUMMARY_SQL = _PG_RUN_SUMMARY.replace(
    "DURATION", "COALESCE(r.active_s, 0) + EXTRACT(EPOCH FROM (r.finished_at::timestamptz"
    " - COALESCE(r.resumed_at, r.started_at)::timestamptz))")
_PG_M021_RUN_SUMMARY_SQL = _PG_RUN_SUMMARY.replace(
    "DURATION", "EXTRACT(EPOCH FROM (r.finished_at::timestamptz - r.started_at::timestamptz))")
_PG_M021 = (
    f"CREATE OR REPLACE VIEW daily_spend AS {PG_DAILY_SPEND_SQL}",
    f"CREATE OR REPLACE VIEW run_summary AS {_PG_M021_RUN_SUMMARY_SQL}",
)
_PG_M024 = (f"CREATE OR REPLACE VIEW run_summary AS {PG_RUN_SUMMARY_SQL}",)


M021 = Migration(__name__, _m021_views, postgresql=_PG_M021)
M024 = Migration(__name__, _m024_active_duration, postgresql=_PG_M024)
