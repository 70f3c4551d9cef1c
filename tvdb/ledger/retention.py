"""Retention: fold old per-call usage rows into daily aggregates so the database stays small.

`prune` moves every `usage` row older than the cutoff into `usage_daily`, one row per local day
and group (service, model, scenario, implementation, run, stage, unit, price version), in one
transaction, then deletes the folded rows. Reports read both tables, so their sums stay exact.
Only whole local days are folded (the cutoff is rounded down to midnight), and running it again
folds nothing new: it is idempotent.

Never folded, whatever `--older-than` or `--now` say: a window that a budget or limit still reads —
today in the budget's time zone and the sliding hour — at `now` or at any of the `also_now`
instants the caller passes (the CLI passes the real clock, so a `--now` in the future cannot fold
today). Budget checks read the aggregates as well as the rows anyway (tvdb.ledger.windows), so
folding can never make spend disappear from a budget.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from tvdb.clock import iso
from tvdb.errors import ConfigError
from tvdb.ledger.periods import local_day, local_day_start
from tvdb.ledger.usage_store import FOLD_GROUP, UsageStore
from tvdb.ledger.windows import day_window
from tvdb.storage import Database, transaction

MIN_AGE = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
_GROUP = FOLD_GROUP


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What `prune` folded: rows with `ts < cutoff` (a local midnight in `timezone`), in nano-USD."""

    cutoff: dt.datetime
    timezone: str
    rows_folded: int
    aggregates: int  # distinct day+group keys written or added to
    first_day: dt.date | None
    last_day: dt.date | None
    spent_nusd: int  # real money in the folded rows (unchanged by folding)
    would_cost_nusd: int
    dry_run: bool = False
    # True when the cutoff asked for was moved back so as not to fold a window budgets still read
    protected: bool = False


@dataclass
class _Agg:
    day: dt.date
    group: tuple[object, ...]
    calls: int = 0
    errors: int = 0
    units: float = 0.0
    cost_nusd: int = 0
    would_cost_nusd: int = 0
    cost_unknown: int = 0
    would_cost_unknown: int = 0
    assumed_nusd: int = 0

    def add(self, status: str, units: float | None, cost: int | None, would: int | None, assumed: int) -> None:
        self.calls += 1
        self.errors += int(status == "error")
        self.units += float(units or 0)
        self.cost_nusd += cost or 0
        self.would_cost_nusd += would or 0
        self.cost_unknown += int(cost is None)
        self.would_cost_unknown += int(would is None)
        self.assumed_nusd += (cost or 0) if assumed else 0

    def record(self, timezone: str) -> list[object]:
        """Values for: day, timezone, start_ts, end_ts, *_GROUP, *_SUMS."""
        return [
            self.day.isoformat(), timezone, iso(local_day_start(self.day, timezone)),
            iso(local_day_start(self.day + dt.timedelta(days=1), timezone)), *self.group,
            self.calls, self.errors, self.units, self.cost_nusd, self.would_cost_nusd,
            self.cost_unknown, self.would_cost_unknown, self.assumed_nusd,
        ]


def prune_cutoff(older_than: dt.timedelta, now: dt.datetime, timezone: str) -> dt.datetime:
    """The local midnight at or before `now - older_than`."""
    return local_day_start(local_day(now - older_than, timezone), timezone)


def protected_from(instants: tuple[dt.datetime, ...], timezone: str, recent: dt.timedelta = HOUR) -> dt.datetime:
    """The local midnight at or before the earliest instant a budget or limit reads at any of
    `instants`: the start of that day in `timezone` (the daily budget) and `recent` back (the sliding
    hour of request limits, or a longer error-rate window)."""
    earliest = min(min(day_window(t, timezone).start, t - max(recent, HOUR)) for t in instants)
    return local_day_start(local_day(earliest, timezone), timezone)


def prune(
    db: Database, older_than: dt.timedelta, now: dt.datetime, *, timezone: str = "UTC",
    dry_run: bool = False, also_now: tuple[dt.datetime, ...] = (), recent: dt.timedelta = HOUR,
) -> PruneResult:
    """Fold usage rows of whole local days older than `older_than` into `usage_daily`.

    `timezone` is the budget's. Nothing a budget or limit reads at `now` or at `also_now` (e.g. the
    real clock when `now` was given by hand) is folded, nor the last `recent` (at least the sliding
    hour; the CLI passes the error-rate alert window when longer). Raises ConfigError when `older_than` is
    under one day. With `dry_run` nothing is written.
    """
    if older_than < MIN_AGE:
        raise ConfigError(
            "--older-than must be at least 1d: recent rows feed the daily budget, hourly limits and alerts"
        )
    asked = prune_cutoff(older_than, now, timezone)
    cutoff = min(asked, protected_from((now, *also_now), timezone, recent))
    store = UsageStore(db)
    with transaction(db):
        groups: dict[str, _Agg] = {}
        rows = spent = would_total = 0
        for rec in store.rows_before(iso(cutoff)):
            ts, status, units, cost, would, assumed, *group = rec
            day = local_day(dt.datetime.fromisoformat(ts), timezone)
            key = json.dumps([day.isoformat(), timezone, *group])
            agg = groups.get(key)
            if agg is None:
                agg = groups[key] = _Agg(day, tuple(group))
            agg.add(status, units, cost, would, assumed)
            rows += 1
            spent += (cost or 0) if group[_GROUP.index("implementation")] == "real" else 0
            would_total += would or 0
        if not dry_run and groups:
            store.fold(iso(cutoff), [[key, *agg.record(timezone)] for key, agg in groups.items()])
    days = [agg.day for agg in groups.values()]
    return PruneResult(
        cutoff=cutoff, timezone=timezone, rows_folded=rows, aggregates=len(groups),
        first_day=min(days, default=None), last_day=max(days, default=None), spent_nusd=spent,
        would_cost_nusd=would_total, dry_run=dry_run, protected=cutoff < asked,
    )
