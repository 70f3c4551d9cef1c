"""Builds the run-wide service policies from settings: the retry policy, the budget guard, faults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.services.calls import BudgetGuard, NoRetry, RetryPolicy


def build_retry(settings: Settings, clock: Clock) -> RetryPolicy:
    return NoRetry()


def build_budget(db: sqlite_utils.Database, settings: Settings, clock: Clock) -> BudgetGuard:
    """The ledger's guard: daily and run budgets, hourly request limits, reserved before real calls."""
    from tvdb.ledger.budget import LedgerBudget

    return LedgerBudget(db, settings, clock)


def build_faults(faults: Sequence[dict[str, Any]]) -> Any:
    return None
