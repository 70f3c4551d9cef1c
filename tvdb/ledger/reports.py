"""Cost reports over the ledger: where every cent went, grouped and filtered, plus today's budget.

`build_report` reads per-call `usage` rows and, for pruned periods, the daily aggregates in
`usage_daily` (see tvdb.ledger.retention), so totals stay exact after pruning. Money is summed in
integer nano-USD; a call whose price is unknown is counted in `unknown`, never as $0. An amount
that includes any unpriced call has no full figure (`None`, in USD and nano-USD alike); the sum of
its priced calls is still given, under its own name (`known_usd`, ``*_known_usd`` in JSON).

Aggregated days are included when their local midnight lies in the period, and grouped by the day
they were folded into (in the zone configured when `tvdb cost prune` ran).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tvdb.catalog import PARSE_CREDITS_PER_PAGE
from tvdb.clock import iso
from tvdb.errors import ConfigError
from tvdb.ledger.periods import Period, local_day
from tvdb.ledger.prices import LLAMAPARSE, nusd_to_usd
from tvdb.ledger.today import BudgetStatus, budget_status
from tvdb.ledger.usage_store import UsageStore
from tvdb.storage import Database

# --by name → usage column (`mode` is the implementation that answered: real / mock / replay)
GROUP_COLUMNS: Mapping[str, str] = {
    "day": "day", "service": "service", "model": "model", "scenario": "scenario",
    "mode": "implementation", "run": "run_id",
}
_MAX_SERIES_DAYS = 400


@dataclass(frozen=True, slots=True)
class ReportFilters:
    """Only rows matching every non-empty filter (any of its values) are reported."""

    services: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    implementations: tuple[str, ...] = ()

    def columns(self) -> dict[str, tuple[str, ...]]:
        """Ledger column → the values it may have (empty: any)."""
        return {"service": self.services, "model": self.models, "scenario": self.scenarios,
                "run_id": self.runs, "implementation": self.implementations}


@dataclass(frozen=True, slots=True)
class Amount:
    """A sum of money: `nusd` over `known` priced calls, plus `unknown` calls without a price."""

    nusd: int = 0
    known: int = 0
    unknown: int = 0

    @property
    def total_nusd(self) -> int | None:
        """The whole amount in nano-USD; None when any call counted has no price."""
        return None if self.unknown else self.nusd

    @property
    def usd(self) -> float | None:
        """The whole amount in USD, unrounded; None when any call counted has no price (a partial
        sum is never presented as the full figure: see `known_usd`)."""
        return None if self.unknown else nusd_to_usd(self.nusd)

    @property
    def known_usd(self) -> float:
        """USD over the priced calls only (all of it when `unknown` is 0)."""
        return nusd_to_usd(self.nusd)

    def add(self, nusd: int | None, calls: int = 1, unknown: int | None = None) -> Amount:
        unk = (calls if nusd is None else 0) if unknown is None else unknown
        return Amount(self.nusd + (nusd or 0), self.known + calls - unk, self.unknown + unk)


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group: `group` pairs (--by name, value) in --by order; amounts by kind of call.

    `spent` is real money (real calls' cost); `would_cost` the live-price value of every call;
    `mock_would_cost`/`replay_would_cost` the part answered by mocks / cassettes (money not spent).
    """

    group: tuple[tuple[str, str | None], ...]
    calls: int = 0
    errors: int = 0
    spent: Amount = Amount()
    would_cost: Amount = Amount()
    mock_would_cost: Amount = Amount()
    replay_would_cost: Amount = Amount()
    credits: float = 0.0  # LlamaParse credits billed (pages × the tier's credits; raw usage rows only)

    @property
    def keys(self) -> dict[str, str | None]:
        return dict(self.group)

    @property
    def spent_usd(self) -> float | None:
        return self.spent.usd

    @property
    def would_cost_usd(self) -> float | None:
        return self.would_cost.usd

    @property
    def unknown_price_calls(self) -> int:
        return self.would_cost.unknown


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One local day of the spend series: real spend and the mock/replay value not spent, both in
    nano-USD over priced calls; `spent_unknown`/`not_spent_unknown` count the calls without a price."""

    day: dt.date
    calls: int
    spent_nusd: int
    not_spent_nusd: int
    spent_unknown: int = 0
    not_spent_unknown: int = 0


@dataclass(frozen=True, slots=True)
class CostReport:
    period: Period
    timezone: str
    by: tuple[str, ...]
    filters: ReportFilters
    rows: tuple[ReportRow, ...]
    totals: ReportRow
    budget: BudgetStatus
    daily: tuple[DayPoint, ...]
    generated_at: dt.datetime
    aggregated_rows: int = 0  # rows of usage_daily (pruned days) that contributed


@dataclass
class _Fact:
    """Calls of one usage row or one aggregate row, normalised."""

    day: dt.date
    keys: dict[str, str | None]
    calls: int
    errors: int
    cost: int | None
    would: int | None
    cost_unknown: int
    would_unknown: int
    credits: float = 0.0


@dataclass
class _Acc:
    row: ReportRow

    def add(self, f: _Fact) -> None:
        r = self.row
        impl = f.keys["mode"]
        spent = r.spent.add(f.cost, f.calls, f.cost_unknown) if impl == "real" else r.spent
        would = r.would_cost.add(f.would, f.calls, f.would_unknown)
        mock, replay = r.mock_would_cost, r.replay_would_cost
        if impl == "mock":
            mock = mock.add(f.would, f.calls, f.would_unknown)
        elif impl == "replay":
            replay = replay.add(f.would, f.calls, f.would_unknown)
        self.row = ReportRow(r.group, r.calls + f.calls, r.errors + f.errors, spent, would, mock, replay,
                             r.credits + f.credits)


def _credits(service: str, model: str, units: float | None) -> float:
    """LlamaParse credits of `units` pages at tier `model` (0 for other services); the same for
    raw rows and the daily aggregates that keep their pages, so pruning changes no report."""
    return (units or 0) * PARSE_CREDITS_PER_PAGE.get(model, 0) if service == LLAMAPARSE else 0.0


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _facts(
    db: Database, period: Period, filters: ReportFilters, timezone: str, counter: list[int]
) -> Iterator[_Fact]:
    store = UsageStore(db)
    since = None if period.since is None else iso(period.since)
    until = None if period.until is None else iso(period.until)
    for ts, service, model, scenario, impl, run_id, status, cost, would, units in store.report_rows(
            since, until, filters.columns()):
        day = local_day(_ts(ts), timezone)
        keys = {"day": day.isoformat(), "service": service, "model": model, "scenario": scenario,
                "mode": impl, "run": run_id}
        yield _Fact(day, keys, 1, int(status == "error"), cost, would,
                    int(cost is None), int(would is None), _credits(service, model, units))
    for day_s, service, model, scenario, impl, run_id, calls, errors, cost, would, cu, wu, units in (
            store.report_daily(since, until, filters.columns())):
        counter[0] += 1
        keys = {"day": day_s, "service": service, "model": model, "scenario": scenario,
                "mode": impl, "run": run_id}
        yield _Fact(dt.date.fromisoformat(day_s), keys, calls, errors, cost, would, cu, wu,
                    _credits(service, model, units))


def build_report(
    db: Database,
    *,
    period: Period,
    now: dt.datetime,
    daily_budget_usd: float,
    timezone: str = "UTC",
    by: Sequence[str] = ("service",),
    filters: ReportFilters = ReportFilters(),
) -> CostReport:
    """Spend in `period` grouped by `by` (names of GROUP_COLUMNS), with totals, today's budget and a
    per-day series. Raises ConfigError for an unknown group name."""
    by = tuple(dict.fromkeys(by))
    unknown = [b for b in by if b not in GROUP_COLUMNS]
    if unknown:
        raise ConfigError(f"--by: unknown group {unknown[0]!r}; use one of {', '.join(GROUP_COLUMNS)}")
    groups: dict[tuple[str | None, ...], _Acc] = {}
    total = _Acc(ReportRow(()))
    days: dict[dt.date, list[int]] = {}  # calls, spent, not spent, spent unknown, not spent unknown
    counter = [0]
    for f in _facts(db, period, filters, timezone, counter):
        gkey = tuple(f.keys[b] for b in by)
        acc = groups.get(gkey)
        if acc is None:
            acc = groups[gkey] = _Acc(ReportRow(tuple(zip(by, gkey, strict=True))))
        acc.add(f)
        total.add(f)
        point = days.setdefault(f.day, [0, 0, 0, 0, 0])
        point[0] += f.calls
        if f.keys["mode"] == "real":
            point[1] += f.cost or 0
            point[3] += f.cost_unknown
        else:
            point[2] += f.would or 0
            point[4] += f.would_unknown
    rows = tuple(groups[k].row for k in sorted(groups, key=lambda k: tuple((v is None, v or "") for v in k)))
    return CostReport(
        period=period, timezone=timezone, by=by, filters=filters, rows=rows, totals=total.row,
        budget=budget_status(db, daily_budget_usd=daily_budget_usd, timezone=timezone, now=now),
        daily=_series(days, period, timezone, now), generated_at=now, aggregated_rows=counter[0],
    )


def _series(days: Mapping[dt.date, list[int]], period: Period, timezone: str,
            now: dt.datetime) -> tuple[DayPoint, ...]:
    """Every local day of the period (days without calls as zeros), at most the last 400."""
    first = local_day(period.since, timezone) if period.since else min(days, default=None)
    if period.until is not None:
        last: dt.date | None = local_day(period.until - dt.timedelta(microseconds=1), timezone)
    else:
        last = max([*days, local_day(now, timezone)])
    if first is None or last is None or last < first:
        return ()
    first = max(first, last - dt.timedelta(days=_MAX_SERIES_DAYS - 1))
    out = []
    d = first
    while d <= last:
        calls, spent, not_spent, spent_unknown, not_spent_unknown = days.get(d, [0, 0, 0, 0, 0])
        out.append(DayPoint(d, calls, spent, not_spent, spent_unknown, not_spent_unknown))
        d += dt.timedelta(days=1)
    return tuple(out)


AMOUNTS = ("spent", "would_cost", "mock_would_cost", "replay_would_cost")
"""The amounts of a row; each appears in JSON as ``<name>_usd`` (None unless every call is priced)
and ``<name>_known_usd`` (the sum over priced calls)."""


def row_to_dict(row: ReportRow) -> dict[str, Any]:
    """A row as JSON-ready data (USD unrounded): group keys, calls, errors; per amount of AMOUNTS
    ``<name>_usd`` — null when any of its calls has no price — and ``<name>_known_usd``;
    ``unknown_price_calls`` (all calls without a price) and ``unknown_price_real_calls``; and
    ``spent_nusd``/``would_cost_nusd`` (null exactly when their USD twins are) with their
    ``*_known_nusd`` sums."""
    amounts: dict[str, Amount] = {name: getattr(row, name) for name in AMOUNTS}
    return {
        **row.keys,
        "calls": row.calls,
        "errors": row.errors,
        "llamaparse_credits": row.credits,
        **{f"{name}_usd": a.usd for name, a in amounts.items()},
        "unknown_price_calls": row.unknown_price_calls,
        "unknown_price_real_calls": row.spent.unknown,
        **{f"{name}_known_usd": a.known_usd for name, a in amounts.items()},
        "spent_nusd": row.spent.total_nusd,
        "would_cost_nusd": row.would_cost.total_nusd,
        "spent_known_nusd": row.spent.nusd,
        "would_cost_known_nusd": row.would_cost.nusd,
    }


def _day_to_dict(p: DayPoint) -> dict[str, Any]:
    return {
        "day": p.day.isoformat(),
        "calls": p.calls,
        "spent_usd": None if p.spent_unknown else nusd_to_usd(p.spent_nusd),
        "not_spent_usd": None if p.not_spent_unknown else nusd_to_usd(p.not_spent_nusd),
        "unknown_price_calls": p.spent_unknown + p.not_spent_unknown,
        "spent_known_usd": nusd_to_usd(p.spent_nusd),
        "not_spent_known_usd": nusd_to_usd(p.not_spent_nusd),
    }


def report_to_dict(report: CostReport) -> dict[str, Any]:
    """The whole report as one JSON-ready object: period, rows, totals, budget, daily."""
    b = report.budget
    return {
        "period": {
            "since": iso(report.period.since) if report.period.since else None,
            "until": iso(report.period.until) if report.period.until else None,
            "timezone": report.timezone,
        },
        "by": list(report.by),
        "rows": [row_to_dict(r) for r in report.rows],
        "totals": row_to_dict(report.totals),
        "budget": {
            "daily_usd": nusd_to_usd(b.daily_nusd),
            "spent_today_usd": nusd_to_usd(b.spent_today_nusd),
            "assumed_usd": nusd_to_usd(b.assumed_today_nusd),
            "reserved_usd": nusd_to_usd(b.reserved_nusd),
            "remaining_usd": nusd_to_usd(b.remaining_nusd),
            "percent_used": b.percent_used,
            "projected_end_of_day_usd": nusd_to_usd(b.projected_nusd),
            "unknown_price_calls_today": b.unknown_today,
            "window": b.window_label,
        },
        "daily": [_day_to_dict(p) for p in report.daily],
        "aggregated_rows": report.aggregated_rows,
        "generated_at": iso(report.generated_at),
    }


__all__ = [
    "AMOUNTS", "GROUP_COLUMNS", "Amount", "BudgetStatus", "CostReport", "DayPoint", "ReportFilters", "ReportRow",
    "budget_status", "build_report", "report_to_dict", "row_to_dict",
]
