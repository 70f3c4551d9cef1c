"""Metered service calls: the one path every parse and embed request takes, mock or real.

    retry policy ─┬─ attempt 1: pacing (`before_send`) → reserve budget (real only) → send
                  │              → usage row (error) / outcome
                  ├─ attempt 2: …
                  └─ success → `Completed` (usage row not yet written)

A successful call's usage row is written, and its reservation settled, by the stage in the same
transaction that stores the call's result, so a crash can never leave a paid result unrecorded or
a recorded result unstored. Failed attempts are written at once (one row per attempt). A failed
attempt that may have been billed (tvdb.ledger.guard: `ServiceError.maybe_billed`, a Ctrl-C while
in flight, an unexpected error) is recorded at its estimate as spent, flagged `assumed`; only one
proven not processed releases its reservation.

The reservation is taken after pacing, right before sending, and a send is cancelled (and counted
as assumed) before the reservation's lease ends: a reservation is only ever held by a request
that is actually in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar

from tvdb.clock import Clock
from tvdb.domain import Implementation, RetriedRequest
from tvdb.errors import CassetteMiss, DocumentError, ErrorCode, ServiceError, ServiceTimeoutError, StorageError
from tvdb.ledger.guard import BudgetGuard, CallScope, NoBudget, Reservation, SpendRequest
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage, price_call
from tvdb.storage import Database, transaction

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)
LEASE_MARGIN_S = 5.0  # a send ends this long (at most a tenth of the lease) before its lease


class RetryPolicy(Protocol):
    """Runs `attempt(n)` (n = 1, 2, …) until it succeeds or the policy gives up; re-raises the last error."""

    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T: ...


class NoRetry:
    async def run(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        return await attempt(1)


@dataclass(frozen=True, slots=True)
class Completed(Generic[T]):
    """A successful call whose usage row and settlement the caller commits with its result."""

    value: T
    row: UsageRow
    reservation: Reservation | None

    def commit(self, db: Database, budget: BudgetGuard) -> None:
        """Write the usage row and settle the reservation; call inside the stage's transaction."""
        with transaction(db):
            insert_usage(db, self.row)
            if self.reservation is not None:
                budget.settle(self.reservation, self.row.pricing.cost_nusd)

    def commit_with(self, db: Database, budget: BudgetGuard, store: Callable[[], R]) -> R:
        """`store()` the call's results and commit the usage row with them, in one transaction.

        If the database cannot take the write (StorageError: a full disk, a write lock held too
        long…), the paid call's usage row and settlement are still written on their own if that
        small write gets through, before the error goes on; if even that fails, the reservation
        stays active and is counted as assumed spend once this process ends.
        """
        try:
            with transaction(db):
                out = store()
                self.commit(db, budget)
                return out
        except StorageError:
            try:
                self.commit(db, budget)
            except StorageError as exc:
                # say what went wrong (exc.reason): a lock timeout is not a full disk
                log.warning("could not store the %s call's usage: %s; it is held by its reservation",
                            self.row.service, exc.reason)
            raise


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
    # the HTTP status of a successful answer, for its ledger row, when the caller saw the answer itself
    # (a session's wire); else 200 for a real or replayed one, since tvdb's clients raise for any other
    # status, and none for a local service, which answers without HTTP
    http_status_of: Callable[[T], int | None] | None = None
    provenance: str | None = None
    run_budget_usd: float | None = None
    # awaited before every attempt, before its reservation (client-side RPM/TPM pacing), so that a
    # pacing wait never holds budget
    before_send: Callable[[], Awaitable[None]] | None = None
    # whether a cassette answered, read from the result: a recording session answers the requests
    # its cassette already holds (`--record-mode new_episodes`); the row is then `replay`, no money
    replayed: Callable[[T], bool] | None = None


def _http_status(spec: CallSpec[T], value: T, served: Implementation) -> int | None:
    if spec.http_status_of is not None:
        return spec.http_status_of(value)
    return None if served is Implementation.MOCK else 200


class ServiceCaller:
    """Makes metered calls: budget reservation, retries, one usage row per attempt."""

    def __init__(
        self,
        *,
        db: Database,
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
            if spec.before_send is not None:
                await spec.before_send()
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
                base = replace(base, reservation_id=reservation.reservation_id)
            started = self.clock.monotonic()
            try:
                value = await self._send(spec, reservation)
            except (ServiceError, DocumentError) as exc:
                # a document the service refuses (encrypted, corrupt…) is a failed request too
                if isinstance(exc, ServiceError):
                    code, status, request_id = exc.code or type(exc).__name__, exc.status, exc.request_id
                else:
                    code, status, request_id = exc.code.value, None, None
                row = replace(base, status="error", error_code=code, http_status=status, request_id=request_id,
                              latency_ms=(self.clock.monotonic() - started) * 1000)
                self._failed(spec, row, reservation, maybe_billed=isinstance(exc, ServiceError) and exc.maybe_billed,
                             billed_units=exc.billed_units if isinstance(exc, ServiceError) else None)
                raise
            except BaseException as exc:
                # stopped mid-call (Ctrl-C, SIGTERM, cancelled) or an error we did not expect: the
                # provider may have answered, and billed, a request we never read. A cassette miss
                # is neither: vcrpy refused the request before anything was sent.
                missed = isinstance(exc, CassetteMiss)
                code = "interrupted" if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt) else \
                    ErrorCode.CASSETTE_MISS.value if missed else "internal"
                row = replace(base, status="error", error_code=code,
                              latency_ms=(self.clock.monotonic() - started) * 1000)
                try:
                    self._failed(spec, row, reservation, maybe_billed=not missed)
                except Exception:  # noqa: BLE001 - the original error matters; an active reservation
                    # whose process ends is swept into assumed spend by the next reservation
                    log.exception("could not record the interrupted %s call", spec.service)
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
            served = Implementation.REPLAY if spec.replayed is not None and spec.replayed(value) \
                else spec.implementation
            priced = spec if served is spec.implementation else replace(spec, implementation=served)
            row = replace(
                base, implementation=served, units=units, pricing=self._price(priced, units, now.date()),
                latency_ms=latency, usage=spec.usage_of(value), request_id=spec.request_id_of(value),
                http_status=_http_status(spec, value, served),
            )
            return Completed(value, row, reservation)

        from tvdb.logcontext import log_context

        with log_context(run_id=scope.run_id, correlation_id=scope.correlation_id):
            return await self.retry.run(attempt)

    def record_retried(self, scope: CallScope, spec: CallSpec[Any], retried: RetriedRequest) -> None:
        """A usage row for a request inside `spec`'s call that failed and was retried (a LlamaParse
        status poll): cost 0 (the service bills the upload, once), its HTTP status and error code, and
        `usage.retried`, so the ledger shows every retried request as it does a retried call."""
        row = UsageRow(
            ts=retried.at, run_id=scope.run_id, stage=scope.stage, service=spec.service,
            implementation=retried.implementation, model=spec.model, units=0, unit=spec.unit,
            pricing=Pricing(0, 0, None), status="error", job_ids=scope.job_ids,
            correlation_id=scope.correlation_id, scenario=scope.scenario, provenance=spec.provenance,
            usage={"request": retried.request, "job_id": retried.job_id, "retried": True},
            error_code=retried.error_code, http_status=retried.http_status, latency_ms=retried.latency_ms,
            request_id=retried.job_id, attempt=retried.attempt,
        )
        with transaction(self.db):
            insert_usage(self.db, row)

    async def _send(self, spec: CallSpec[T], reservation: Reservation | None) -> T:
        """`spec.send()`, cancelled before the reservation's lease ends (it may then have been billed)."""
        if reservation is None or reservation.expires_at is None:
            return await spec.send()
        lease_s = (reservation.expires_at - self.clock.now()).total_seconds()
        limit_s = max(0.001, lease_s - min(LEASE_MARGIN_S, lease_s / 10))
        try:
            async with asyncio.timeout(limit_s):
                return await spec.send()
        except TimeoutError:
            raise ServiceTimeoutError(
                f"{spec.service}: no answer within {limit_s:g}s, the lease of its budget reservation "
                "(reservation_ttl_s); counted as spent", service=spec.service, maybe_billed=True,
            ) from None

    def _failed(self, spec: CallSpec[Any], row: UsageRow, reservation: Reservation | None, *,
                maybe_billed: bool, billed_units: float | None = None) -> None:
        """Record a failed attempt. One whose bill the service reported (`billed_units`) is settled at
        that; one that may have been billed is settled at its estimate as spent (`assumed`); one
        proven not processed releases its reservation."""
        if billed_units is not None and math.isfinite(billed_units) and billed_units >= 0:
            row = replace(row, units=billed_units, pricing=self._price(spec, billed_units, row.ts.date()))
            with transaction(self.db):
                insert_usage(self.db, row)
                if reservation is not None:
                    self.budget.settle(reservation, row.pricing.cost_nusd)
            return
        assumed = maybe_billed and reservation is not None
        if assumed:
            row = replace(row, units=spec.estimate_units, assumed=True,
                          pricing=self._price(spec, spec.estimate_units, row.ts.date()))
        with transaction(self.db):
            insert_usage(self.db, row)
            if reservation is not None:
                if assumed:
                    self.budget.settle_assumed(reservation)
                else:
                    self.budget.release(reservation)
