"""Today's daily budget at a glance: spent, reserved, remaining and the end-of-day projection.

Sums come from tvdb.ledger.windows (the same functions the budget guard uses), so a report and a
reservation decision see the same numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from tvdb.ledger.prices import usd_to_nusd
from tvdb.ledger.reservations import ReservationStore
from tvdb.ledger.usage_store import UsageStore
from tvdb.ledger.windows import assumed_spend_nusd, day_window, real_spend_nusd
from tvdb.storage import Database


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Today's daily budget (real money) in the configured zone; amounts in nano-USD.

    `spent_today` includes assumed spend (the estimates of requests that may have been billed,
    tvdb.ledger.guard); `assumed_today` is that part of it. `remaining` = budget − spent − reserved,
    never below 0. `projected` extrapolates today's average rate so far to the end of the day.
    `unknown_today` counts real calls today with no price.
    """

    daily_nusd: int
    spent_today_nusd: int
    reserved_nusd: int
    remaining_nusd: int
    projected_nusd: int
    window_label: str
    window_start: dt.datetime
    window_end: dt.datetime
    unknown_today: int = 0
    assumed_today_nusd: int = 0

    @property
    def percent_used(self) -> float | None:
        """Spent today as % of the daily budget; None for a $0 budget."""
        return None if self.daily_nusd == 0 else 100 * self.spent_today_nusd / self.daily_nusd

    @property
    def projected_percent(self) -> float | None:
        return None if self.daily_nusd == 0 else 100 * self.projected_nusd / self.daily_nusd


def budget_status(db: Database, *, daily_budget_usd: float, timezone: str,
                  now: dt.datetime) -> BudgetStatus:
    """Today's spend, reservations and what is left of the daily budget (see BudgetStatus)."""
    window = day_window(now, timezone)
    budget = usd_to_nusd(Decimal(str(daily_budget_usd)))
    spent = real_spend_nusd(db, window)
    reserved = ReservationStore(db).held_nusd()
    # rows, and aggregates of pruned days overlapping today (like the spend)
    unknown = UsageStore(db).unknown_price_calls(window.start_iso, window.end_iso)
    elapsed_us = max(0, (now - window.start) // dt.timedelta(microseconds=1))
    day_us = (window.end - window.start) // dt.timedelta(microseconds=1)
    projected = spent if elapsed_us == 0 else spent * day_us // elapsed_us
    return BudgetStatus(
        daily_nusd=budget, spent_today_nusd=spent, reserved_nusd=reserved,
        remaining_nusd=max(0, budget - spent - reserved), projected_nusd=projected,
        window_label=window.label, window_start=window.start, window_end=window.end,
        unknown_today=int(unknown), assumed_today_nusd=assumed_spend_nusd(db, window),
    )
