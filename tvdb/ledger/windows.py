"""Budget windows and the sums every budget decision starts from (spend, attempts).

A daily budget covers one calendar day in the configured time zone (UTC by default); an hourly
limit is a sliding 3,600-second window. Timestamps in the database are UTC ISO-8601 strings
(`tvdb.clock.iso`), so a window is a plain text range `start <= ts < end`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tvdb.clock import iso
from tvdb.ledger.usage_store import UsageStore
from tvdb.storage import Database


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
    db: Database, window: Window | None = None, *, run_id: str | None = None,
) -> int:
    """Money spent (real calls' `cost_nusd`, assumed spend included) in `window`, optionally for one run.

    Reads the per-call rows and the daily aggregates `tvdb cost prune` folds them into: an aggregate
    day that overlaps `window` counts in full (folding may over-count a window, never hide spend).
    """
    return sum(_spend(db, window, run_id, assumed_only=False))


def assumed_spend_nusd(
    db: Database, window: Window | None = None, *, run_id: str | None = None,
) -> int:
    """The part of `real_spend_nusd` that is assumed: estimates of requests that may have been billed."""
    return sum(_spend(db, window, run_id, assumed_only=True))


def _spend(db: Database, window: Window | None, run_id: str | None, *,
           assumed_only: bool) -> tuple[int, int]:
    start, end = (None, None) if window is None else (window.start_iso, window.end_iso)
    return UsageStore(db).spend(start, end, run_id, assumed_only=assumed_only)


def real_attempts(db: Database, service: str, since: dt.datetime, now: dt.datetime) -> tuple[int, int]:
    """Real request attempts of `service` in (since, now]: (from per-call rows, from the daily
    aggregates of days overlapping that range, whose calls all count)."""
    return UsageStore(db).attempts(service, since, now)


def attempt_times(db: Database, service: str, since: dt.datetime) -> list[str]:
    """Timestamps (ISO UTC, oldest first) of the per-call rows of real attempts of `service` after `since`."""
    return UsageStore(db).attempt_times(service, since)
