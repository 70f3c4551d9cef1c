"""The budget guard API: what every paid call, of any service, does with money before and after it.

    reserve(SpendRequest)         before the request is sent; refuses (raises) without spending
    ── send ──
    settle(r, actual_nusd)        the provider answered and said what it billed
    settle_assumed(r)             the provider may have billed: the estimate counts as spent (`assumed`)
    release(r)                    proven not processed: the reservation is freed

The rule that keeps a budget from ever being exceeded: **a request that may have been billed counts
as spent until proven otherwise.** So `release` is only for a request that never reached the
provider or that the provider refused without billing (an HTTP error status); a timeout after
sending, a connection lost after sending, a 200 whose body we could not read, a Ctrl-C while the
request is in flight, or a crash are settled at the estimate and flagged `assumed`
(see `ServiceError.maybe_billed`). `tvdb cost reconcile` corrects assumed spend from the provider's
usage export. A reservation whose process died without settling counts the same way (`assumed`).

A service client (OpenAI, LlamaParse, anything added later) does not call the guard itself: it
raises typed errors (tvdb.errors) with `maybe_billed` set truthfully, and `ServiceCaller`
(tvdb.services.calls) applies the rule above. The implementation over SQLite is
`tvdb.ledger.budget.LedgerBudget`. All amounts are integer nano-USD.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from tvdb.errors import CostLimitExceeded, RateLimitExceeded


@dataclass(frozen=True, slots=True)
class CallScope:
    """Who a call is for: written on its usage rows and its reservation."""

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
    """Money and one request slot held for a call. `expires_at` (UTC) is the end of its lease: the
    call must be over by then (ServiceCaller cancels a send that would outlive it). None for a guard
    that holds nothing."""

    reservation_id: str | None
    request: SpendRequest
    expires_at: dt.datetime | None = None


class BudgetGuard(Protocol):
    """Reserves money and request slots before a real call (see the module docstring).

    `reserve` raises CostLimitExceeded, RateLimitExceeded or PriceUnknownError without spending.
    `settle`, `settle_assumed` and `release` must join the caller's open transaction
    (tvdb.db.transaction), so the usage row and the settlement commit together.
    """

    def reserve(self, request: SpendRequest) -> Reservation: ...

    def settle(self, reservation: Reservation, actual_nusd: int | None) -> None: ...

    def settle_assumed(self, reservation: Reservation) -> None:
        """Settle at the reserved estimate: the provider may have billed a request we cannot read."""
        ...

    def release(self, reservation: Reservation) -> None: ...

    def deferred_until(self, exc: CostLimitExceeded | RateLimitExceeded) -> dt.datetime | None:
        """When a refused call could fit again (UTC), or None when waiting cannot help."""
        ...


class NoBudget:
    """A guard that admits everything and holds nothing (mock-only use, tests)."""

    def reserve(self, request: SpendRequest) -> Reservation:
        return Reservation(None, request)

    def settle(self, reservation: Reservation, actual_nusd: int | None) -> None:
        return None

    def settle_assumed(self, reservation: Reservation) -> None:
        return None

    def release(self, reservation: Reservation) -> None:
        return None

    def deferred_until(self, exc: CostLimitExceeded | RateLimitExceeded) -> dt.datetime | None:
        return None
