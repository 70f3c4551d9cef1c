"""Builds the run-wide service policies from settings: the retry policy, the budget guard, faults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlite_utils

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.ledger.guard import BudgetGuard
from tvdb.services.calls import RetryPolicy

if TYPE_CHECKING:
    from tvdb.faults.plan import FaultSchedule


def build_retry(settings: Settings, clock: Clock) -> RetryPolicy:
    """The one retry policy (tenacity), sleeping on the run's clock."""
    from tvdb.services.retry import ServiceRetryPolicy

    return ServiceRetryPolicy(settings.retry, sleep=clock.sleep)


def build_budget(db: sqlite_utils.Database, settings: Settings, clock: Clock) -> BudgetGuard:
    """The ledger's guard: daily and run budgets, hourly request limits, reserved before real calls."""
    from tvdb.ledger.budget import LedgerBudget

    return LedgerBudget(db, settings, clock)


def build_faults(faults: Sequence[dict[str, Any]]) -> FaultSchedule | None:
    """One schedule for the run (call counters per service), or None without faults."""
    if not faults:
        return None
    from tvdb.faults.plan import FaultPlan

    return FaultPlan.of(list(faults)).schedule()
