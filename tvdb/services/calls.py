"""Metered service calls: the one path every parse and embed request takes, mock or real.

    retry policy ─┬─ attempt 1: reserve budget (real only) → call → usage row (error) / outcome
                  ├─ attempt 2: …
                  └─ success → `Completed` (usage row not yet written)

A successful call's usage row is written, and its reservation settled, by the stage in the same
transaction that stores the call's result, so a crash can never leave a paid result unrecorded or
a recorded result unstored. Failed attempts are written at once (one row per attempt).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

import sqlite_utils

from tvdb.clock import Clock
from tvdb.db import transaction
from tvdb.domain import Implementation
from tvdb.errors import CostLimitExceeded, DocumentError, RateLimitExceeded, ServiceError
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage, price_call

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallScope:
    """Who a call is for: written on its usage rows."""

    run_id: str | None
    scenario: str | None
    stage: str
    job_ids: tuple[str, ...] = ()
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpendRequest:
    """What a real call is about to spend, estimated before the call. Amounts in nano-USD."""

    service: str
    model: str
    units: float
    unit: str
    estimate_nusd: int | None  # None: the price is unknown
    scope: CallScope
    run_budget_usd: float | None = None
    # the instant the call's usage row will carry, so the reservation and the row fall in the same
    # budget window even when a call straddles midnight
    at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    reservation_id: str | None
    request: SpendRequest


class BudgetGuard(Protocol):
    """Reserves money and request slots before a real call (see tvdb.ledger.budget).

    `reserve` raises CostLimitExceeded, RateLimitExceeded or PriceUnknownError without spending.
    `settle` and `release` must join the caller's open transaction (tvdb.db.transaction).
    """

    def reserve(self, request: SpendRequest) -> Reservation: ...

    def settle(self, reservation: Reservation, actual_nusd: int | None) -> None: ...

    def release(self, reservation: Reservation) -> None: ...

    def deferred_until(self, exc: CostLimitExceeded | RateLimitExceeded) -> dt.datetime | None:
        """When a refused call could fit again (UTC), or None when waiting cannot help."""
        ...


class RetryPolicy(Protocol):
    """Runs `attempt(n)` (n = 1, 2, …) until it succeeds or the policy gives up; re-raises the last error."""

    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T: ...


class NoBudget:
    """A guard that admits everything (mock-only use, tests)."""

    def reserve(self, request: SpendRequest) -> Reservation:
        return Reservation(None, request)

    def settle(self, reservation: Reservation, actual_nusd: int | None) -> None:
        return None

    def release(self, reservation: Reservation) -> None:
        return None

    def deferred_until(self, exc: CostLimitExceeded | RateLimitExceeded) -> dt.datetime | None:
        return None


class NoRetry:
    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        return await attempt(1)


@dataclass(frozen=True, slots=True)
class Completed(Generic[T]):
    """A successful call whose usage row and settlement the caller commits with its result."""

    value: T
    row: UsageRow
    reservation: Reservation | None

    def commit(self, db: sqlite_utils.Database, budget: BudgetGuard) -> None:
        """Write the usage row and settle the reservation; call inside the stage's transaction."""
        with transaction(db):
            insert_usage(db, self.row)
            if self.reservation is not None:
                budget.settle(self.reservation, self.row.pricing.cost_nusd)


@dataclass(frozen=True)
class CallSpec(Generic[T]):
    """One logical request: how to make it and how to read its usage from the result."""

    service: str
    implementation: Implementation
    model: str
    unit: str
    estimate_units: float
    send: Callable[[], Awaitable[T]]
    actual_units: Callable[[T], float]
    usage_of: Callable[[T], Mapping[str, Any]] = field(default=lambda _: {})
    request_id_of: Callable[[T], str | None] = field(default=lambda _: None)
    provenance: str | None = None
    run_budget_usd: float | None = None


class ServiceCaller:
    """Makes metered calls: budget reservation, retries, one usage row per attempt."""

    def __init__(
        self,
        *,
        db: sqlite_utils.Database,
        prices: PriceTable,
        clock: Clock,
        retry: RetryPolicy | None = None,
        budget: BudgetGuard | None = None,
    ) -> None:
        self.db = db
        self.prices = prices
        self.clock = clock
        self.retry: RetryPolicy = retry or NoRetry()
        self.budget: BudgetGuard = budget or NoBudget()

    def _price(self, spec: CallSpec[Any], units: float, day: dt.date) -> Pricing:
        return price_call(
            self.prices, service=spec.service, model=spec.model, units=units,
            implementation=spec.implementation, day=day,
        )

    async def call(self, scope: CallScope, spec: CallSpec[T]) -> Completed[T]:
        """Run `spec.send` under the retry policy. Raises the last ServiceError, or a budget error."""

        async def attempt(n: int) -> Completed[T]:
            now = self.clock.now()
            base = UsageRow(
                ts=now, run_id=scope.run_id, stage=scope.stage, service=spec.service,
                implementation=spec.implementation, model=spec.model, units=0, unit=spec.unit,
                pricing=Pricing(0, 0, None), job_ids=scope.job_ids, correlation_id=scope.correlation_id,
                scenario=scope.scenario, provenance=spec.provenance, attempt=n,
            )
            reservation = None
            if spec.implementation is Implementation.REAL:
                estimate = self._price(spec, spec.estimate_units, now.date())
                reservation = self.budget.reserve(
                    SpendRequest(spec.service, spec.model, spec.estimate_units, spec.unit,
                                 estimate.would_cost_nusd, scope, spec.run_budget_usd, at=now)
                )
            started = self.clock.monotonic()
            try:
                value = await spec.send()
            except (ServiceError, DocumentError) as exc:
                # a document the service refuses (encrypted, corrupt…) is a failed request too
                latency = (self.clock.monotonic() - started) * 1000
                if isinstance(exc, ServiceError):
                    code, status, request_id = exc.code or type(exc).__name__, exc.status, exc.request_id
                else:
                    code, status, request_id = exc.code.value, None, None
                with transaction(self.db):
                    insert_usage(self.db, replace(
                        base, status="error", error_code=code, http_status=status, latency_ms=latency,
                        request_id=request_id,
                    ))
                    if reservation is not None:
                        self.budget.release(reservation)
                raise
            except (asyncio.CancelledError, KeyboardInterrupt):
                # stopped mid-call (Ctrl-C, SIGTERM): the provider may have answered, and billed, a
                # request we never read. Keep the reservation held until it expires, as after kill -9,
                # so that money can never slip past a budget; `tvdb resume` re-sends the work.
                raise
            except BaseException:
                if reservation is not None:
                    with transaction(self.db):
                        self.budget.release(reservation)
                raise
            latency = (self.clock.monotonic() - started) * 1000
            units = spec.actual_units(value)
            if not math.isfinite(units) or units < 0:
                log.warning("%s reported %r %s for one call; recording the estimate %s instead",
                            spec.service, units, spec.unit, spec.estimate_units)
                units = spec.estimate_units
            elif (spec.implementation is Implementation.REAL and spec.estimate_units
                  and units > 1.5 * spec.estimate_units):  # mock calls bill nobody: nothing to warn about
                log.warning("%s billed %s %s, %.1fx the %s %s estimated and reserved before the call",
                            spec.service, units, spec.unit, units / spec.estimate_units, spec.estimate_units,
                            spec.unit)
            row = replace(
                base, units=units, pricing=self._price(spec, units, now.date()), latency_ms=latency,
                usage=spec.usage_of(value), request_id=spec.request_id_of(value),
            )
            return Completed(value, row, reservation)

        return await self.retry.run(attempt)
