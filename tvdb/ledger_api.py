"""`tvdb.Ledger`: the cost ledger as one object, for code that uses tvdb as a library.

    ledger = tvdb.Ledger.open()                          # settings layering: .tvdb/tvdb.db by default
    r = ledger.reserve("openai", "text-embedding-3-small", 1_200, "tokens")   # raises CostLimitExceeded
    ...                                                  # make the call
    ledger.settle(r, 1_187)                              # or ledger.release(r) when it was not billed
    ledger.report(since="7d").total                      # a CostReport (tvdb.ledger.reports)

Amounts in USD at this surface (integer nano-USD inside). Every method is the one `tvdb run` uses:
`LedgerBudget` (daily budget, run budgets, hourly limits; atomic across processes) and
`build_report`. A reservation must be settled or released; one left active counts as spent
(`assumed`) once this process is gone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tvdb.clock import Clock, SystemClock
from tvdb.config import Settings
from tvdb.ledger.guard import CallScope, Reservation, SpendRequest
from tvdb.ledger.prices import PriceTable
from tvdb.storage.base import Database, transaction


class Ledger:
    """The ledger on `db` (an open tvdb database) under `settings` (budgets, limits, prices)."""

    def __init__(self, db: Database, settings: Settings, *, clock: Clock | None = None) -> None:
        from tvdb.ledger.budget import LedgerBudget
        from tvdb.services.factory import budget_settings

        self.db = db
        self.settings = settings
        self.clock = clock or SystemClock()
        self.prices = PriceTable.load(settings.prices)
        self.budget = LedgerBudget(db, budget_settings(settings), self.clock)

    @classmethod
    def open(cls, *, settings: Settings | None = None, cwd: str | Path | None = None,
             environ: Mapping[str, str] | None = None, clock: Clock | None = None) -> Ledger:
        """The ledger at the settings' database (tvdb.yaml < TVDB_* environment). Raises ConfigError."""
        from tvdb.config import resolve_settings
        from tvdb.db import open_storage

        if settings is None:
            settings = resolve_settings(cwd=Path(cwd) if cwd else Path.cwd(),
                                        environ=os.environ if environ is None else environ)
        return cls(open_storage(settings), settings, clock=clock)

    def _estimate_nusd(self, service: str, model: str, units: float) -> int | None:
        price = self.prices.lookup(service, model, day=self.clock.now().date())
        return None if price is None else price.cost_nusd(units)

    def reserve(self, service: str, model: str, units: float, unit: str, *, run_id: str | None = None,
                scenario: str | None = None, stage: str = "embed", run_budget_usd: float | None = None,
                ) -> Reservation:
        """Hold the price of `units` (tokens or pages) of `model` before a real call. Raises
        CostLimitExceeded (a budget is full), LocalRequestLimitExceeded (hourly limit) or
        PriceUnknownError (no known price: never reserved at $0)."""
        request = SpendRequest(service, model, units, unit, self._estimate_nusd(service, model, units),
                               CallScope(run_id, scenario, stage), run_budget_usd, at=self.clock.now())
        return self.budget.reserve(request)

    def settle(self, reservation: Reservation, actual_units: float) -> None:
        """The provider billed `actual_units`: the reservation becomes that spend."""
        request = reservation.request
        with transaction(self.db):
            self.budget.settle(reservation, self._estimate_nusd(request.service, request.model, actual_units))

    def release(self, reservation: Reservation) -> None:
        """The call was provably not billed (refused, never sent): free the money."""
        with transaction(self.db):
            self.budget.release(reservation)

    def report(self, *, since: str | None = None, until: str | None = None, day: str | None = None,
               by: tuple[str, ...] = ("service",)) -> Any:
        """Spend grouped by `by` over the period (as `tvdb cost`): a `tvdb.ledger.reports.CostReport`."""
        from tvdb.ledger.periods import parse_period
        from tvdb.ledger.reports import build_report

        now = self.clock.now()
        period = parse_period(since=since, until=until, day=day, timezone=self.settings.timezone, now=now)
        return build_report(self.db, period=period, now=now, daily_budget_usd=self.settings.daily_budget_usd,
                            timezone=self.settings.timezone, by=by)

    def usage(self, run_id: str) -> list[dict[str, Any]]:
        """The usage rows of `run_id` (a run or a session), oldest first, as dicts (tvdb.ledger.usage)."""
        from tvdb.ledger.usage_store import UsageStore

        return UsageStore(self.db).run_rows(run_id)

    def close(self) -> None:
        self.db.close()
