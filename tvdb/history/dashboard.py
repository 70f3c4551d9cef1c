"""What the HTML dashboard shows, gathered once: spend per day against the daily budget, spend by
service and mode, per-stage latency, error and retry rates per day, the latest real and mock runs of
each scenario, and the run list. Plain values; drawing them is tvdb.cli.render_html's job."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tvdb.clock import iso
from tvdb.history.detail import recent_runs
from tvdb.history.store import RunStore, RunSummary
from tvdb.ledger.periods import Period, local_day
from tvdb.ledger.reports import DayPoint, ReportRow, build_report
from tvdb.storage import Database

MODES = ("real", "hybrid", "mock")


@dataclass(frozen=True, slots=True)
class RatePoint:
    """Request attempts of one local day; rates are errors / attempts and retries / attempts."""

    day: dt.date
    attempts: int
    errors: int
    retries: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    @property
    def retry_rate(self) -> float:
        return self.retries / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True)
class ScenarioModes:
    """The latest run of one scenario in each mode that ran it (real, hybrid, mock)."""

    scenario: str
    latest: tuple[RunSummary, ...]


@dataclass(frozen=True)
class Dashboard:
    generated_at: dt.datetime
    period: Period
    timezone: str
    daily_budget_usd: float
    daily: tuple[DayPoint, ...]
    by_service_mode: tuple[ReportRow, ...]
    stage_ms: dict[str, list[float]]
    rates: tuple[RatePoint, ...]
    scenarios: tuple[ScenarioModes, ...]
    runs: tuple[RunSummary, ...]


def _rates(store: RunStore, since: str | None, timezone: str) -> tuple[RatePoint, ...]:
    days: dict[dt.date, list[int]] = {}
    for ts, status, attempt in store.attempts_since(since):
        day = local_day(dt.datetime.fromisoformat(ts.replace("Z", "+00:00")), timezone)
        point = days.setdefault(day, [0, 0, 0])
        point[0] += 1
        point[1] += status != "ok"
        point[2] += attempt > 1
    return tuple(RatePoint(d, *days[d]) for d in sorted(days))


def _latest_by_mode(runs: list[RunSummary]) -> tuple[ScenarioModes, ...]:
    seen: dict[str, dict[str, RunSummary]] = {}
    for r in runs:  # newest first: the first of each (scenario, mode) is its latest
        seen.setdefault(r.scenario, {}).setdefault(r.mode, r)
    return tuple(ScenarioModes(s, tuple(modes[m] for m in MODES if m in modes)) for s, modes in sorted(seen.items()))


def build_dashboard(db: Database, *, period: Period, now: dt.datetime, daily_budget_usd: float,
                    timezone: str = "UTC", max_runs: int = 50) -> Dashboard:
    """Everything the dashboard shows for runs and calls in `period` (its start; the end is now)."""
    store = RunStore(db)
    since = iso(period.since) if period.since else None
    by_day = build_report(db, period=period, now=now, daily_budget_usd=daily_budget_usd, timezone=timezone,
                          by=("day",))
    by_service = build_report(db, period=period, now=now, daily_budget_usd=daily_budget_usd, timezone=timezone,
                              by=("service", "mode"))
    stage_ms: dict[str, list[float]] = {}
    for stage, ms in store.stage_times_since(since):
        stage_ms.setdefault(stage, []).append(ms)
    runs = recent_runs(store, since=since)
    return Dashboard(
        generated_at=now, period=period, timezone=timezone, daily_budget_usd=daily_budget_usd,
        daily=by_day.daily, by_service_mode=by_service.rows, stage_ms=stage_ms,
        rates=_rates(store, since, timezone), scenarios=_latest_by_mode(runs), runs=tuple(runs[:max_runs]),
    )
