"""Budget windows and the two sums every budget decision starts from.

A daily budget covers one calendar day in the configured time zone (UTC by default); an hourly
limit is a sliding 3,600-second window. Timestamps in the database are UTC ISO-8601 strings
(`tvdb.clock.iso`), so a window is a plain text range `start <= ts < end`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlite_utils

from tvdb.clock import iso


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range [start, end) in UTC, with a label such as `daily 2026-11-29 (UTC)`."""

    start: dt.datetime
    end: dt.datetime
    label: str

    @property
    def start_iso(self) -> str:
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        return iso(self.end)


def day_window(now: dt.datetime, timezone: str = "UTC") -> Window:
    """The calendar day containing `now` in `timezone` (DST-aware: a day may be 23 or 25 hours)."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    start_local = dt.datetime.combine(local.date(), dt.time(0), tzinfo=tz)
    end_local = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return Window(
        start_local.astimezone(dt.UTC), end_local.astimezone(dt.UTC), f"daily {local.date()} ({timezone})"
    )


def real_spend_nusd(
    db: sqlite_utils.Database, window: Window | None = None, *, run_id: str | None = None,
) -> int:
    """Money actually spent (real calls' `cost_nusd`) in `window`, optionally for one run."""
    where, args = ["implementation = 'real'", "cost_nusd IS NOT NULL"], []
    if window is not None:
        where.append("ts >= ? AND ts < ?")
        args += [window.start_iso, window.end_iso]
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    row = db.execute(f"SELECT COALESCE(SUM(cost_nusd), 0) FROM usage WHERE {' AND '.join(where)}", args).fetchone()
    return int(row[0])


def active_reservations_nusd(
    db: sqlite_utils.Database, now: dt.datetime, *, run_id: str | None = None
) -> int:
    """Money held by reservations that are active and not yet expired at `now`."""
    where, args = ["status = 'active'", "expires_at > ?"], [iso(now)]
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    row = db.execute(
        f"SELECT COALESCE(SUM(amount_nusd), 0) FROM reservations WHERE {' AND '.join(where)}", args
    ).fetchone()
    return int(row[0])
