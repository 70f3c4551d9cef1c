"""Budgets and hourly request limits, enforced before every real call (the `BudgetGuard` of
ServiceCaller; the API and the rule "may have been billed counts as spent" are in tvdb.ledger.guard).

    reserve(request)   one transaction under the budget lock (`Database.lock_budget_window`: SQLite's
                       BEGIN IMMEDIATE write lock; PostgreSQL's pg_advisory_xact_lock):
        1. sweep: reservations whose owner is gone (dead pid on this host, or an expired lease of
           an owner on another host) become assumed spend at their estimate, never free room
        2. daily budget   real spend in today's window (`settings.timezone`; assumed spend and
                          pruned aggregates included) + active reservations + request ≤ `daily_budget_usd`
        3. run budget     the run's real spend + its active reservations + request ≤ the run budget
                          (`SpendRequest.run_budget_usd`, else `budget.max_usd`)
        4. hourly limit   the service's real request attempts in the last 3,600 s + its active
                          reservations + 1 ≤ `limits.<service>_requests_per_hour`
        5. insert the reservation: `active`, owned by this process, lease until now + `reservation_ttl_s`
    settle(r, actual)  → `settled` (the usage row written in the same transaction carries the money)
    settle_assumed(r)  → `assumed` (the caller's usage row carries the estimate, flagged `assumed`)
    release(r)         → `released`: only for a request proven not processed

The check and the insert happen under the budget lock (SQLite's write lock, or on PostgreSQL a
transaction-scoped advisory lock that every machine sharing the ledger takes), so concurrent
processes can never both spend the same headroom. All money is integer nano-USD; errors carry USD.
Active reservations count against every window (also one opened before midnight) for as long as
they are active: over-counting a call in flight for a moment is safe, under-counting is not.
Only `implementation = 'real'` usage counts; mock and replay calls never reach the guard.

Why a live call's reservation never lapses: on this host the owner's liveness is read from the
process itself (pid + start time), so no pacing wait, retry or slow answer can make a live call's
reservation look abandoned; and ServiceCaller reserves only once pacing is over, right before the
request is sent, and cancels a send that would outlive the lease (for owners on another host,
which only the lease can vouch for).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tvdb.clock import Clock
from tvdb.errors import (
    LOCAL_REQUEST_LIMIT,
    CostLimitExceeded,
    LocalRequestLimitExceeded,
    PriceUnknownError,
    RateLimitExceeded,
)
from tvdb.ledger.guard import Reservation, SpendRequest
from tvdb.ledger.prices import LLAMAPARSE, NANO_PER_USD, OPENAI, nusd_to_usd
from tvdb.ledger.reservations import ReservationStore
from tvdb.ledger.windows import attempt_times, day_window, real_attempts, real_spend_nusd
from tvdb.money import format_usd
from tvdb.owner import process_owner
from tvdb.storage import Database, transaction
from tvdb.words import counted

HOUR_S = 3600
NUSD = "nusd"
REQUESTS = "requests"
Refusal = CostLimitExceeded | RateLimitExceeded
# The label `windows.day_window` gives a daily window, e.g. "daily 2026-11-29 (Europe/Berlin)".
_DAILY_LABEL = re.compile(r"daily (\d{4}-\d{2}-\d{2}) \((.+)\)")


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """One budget or limit as it stands, and whether `requested` more would fit.

    `unit` is "nusd" (limit, used, reserved, requested in nano-USD) or "requests" (counts).
    `name` is "daily", "run" or "hourly <service>"; `window` the label errors use
    ("daily 2026-11-29 (UTC)", "run <run_id>", "hour").
    """

    name: str
    window: str
    unit: str
    limit: int
    used: int
    reserved: int
    requested: int

    @property
    def fits(self) -> bool:
        return self.used + self.reserved + self.requested <= self.limit

    @property
    def remaining(self) -> int:
        """Headroom before `requested`: limit − used − reserved, never below 0."""
        return max(0, self.limit - self.used - self.reserved)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; money in USD (floats, unrounded), counts as ints."""
        money = self.unit == NUSD
        conv, suffix = (nusd_to_usd, "_usd") if money else (int, "")
        out: dict[str, Any] = {"name": self.name, "window": self.window, "unit": "usd" if money else REQUESTS}
        for key in ("limit", "used", "reserved", "requested", "remaining"):
            out[key + suffix] = conv(getattr(self, key))
        out["fits"] = self.fits
        return out


def how_to_fix(check: BudgetCheck) -> str:
    """What lets a refused call through: the setting of the budget or limit that refused it, raised to
    what the call needs (spent + reserved + requested), or, for the daily budget and the hourly
    limits, waiting for the next window."""
    if check.unit != NUSD:  # "hourly <service>": a count of requests
        service = check.name.split()[-1]
        setting = f"{service}_requests_per_hour"
        wait = "" if check.requested > check.limit else ", or wait for a slot to free"  # a limit of 0 never frees
        return (f"to allow it, raise limits.{setting} (tvdb.yaml, or TVDB_LIMITS_{setting.upper()}) to at least "
                f"{check.used + check.reserved + check.requested}{wait}")
    needed = format_usd(nusd_to_usd(check.used + check.reserved + check.requested))
    if check.name == "run":
        return f"to allow it, raise the run budget to at least {needed}: --max-usd, or budget.max_usd in the " \
               "scenario or tvdb.yaml"
    later = ("" if check.requested > check.limit else  # over the whole budget: no day has room for it
             ", or wait for the next day (on_budget_exceeded: defer parks the document until then)")
    return f"to allow it, raise daily_budget_usd (tvdb.yaml, or TVDB_DAILY_BUDGET_USD) to at least {needed}{later}"


@dataclass(frozen=True, slots=True)
class BudgetForecast:
    """What a set of requests would do to every budget that applies, computed without writing.

    `total_nusd` and `by_stage_nusd` cover priced requests; `unpriced` lists (service, model)
    pairs with no known price, which block real calls (PriceUnknownError).
    """

    checks: tuple[BudgetCheck, ...]
    total_nusd: int
    by_stage_nusd: Mapping[str, int]
    unpriced: tuple[tuple[str, str], ...]

    @property
    def fits(self) -> bool:
        return not self.unpriced and all(c.fits for c in self.checks)

    @property
    def total_usd(self) -> float:
        return nusd_to_usd(self.total_nusd)


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """What `LedgerBudget` enforces (the settings of the same names; built from `Settings` by
    tvdb.services.factory.budget_settings).

    `timezone`: IANA name of the daily window; `daily_budget_usd`: real spend per day; `run_budget_usd`:
    real spend per run unless a request carries its own (None: no run budget); `reservation_ttl_s`:
    the lease of a reservation; `hourly_requests`: service ("openai" | "llamaparse") → real request
    attempts per sliding hour (None: no limit).
    """

    daily_budget_usd: float
    timezone: str = "UTC"
    run_budget_usd: float | None = None
    reservation_ttl_s: float = 600.0
    hourly_requests: Mapping[str, int | None] = field(default_factory=dict)


# Why every check reads the reservations before the usage rows (`_READ_ORDER`): a reserve holds the
# budget lock, so no reservation can appear meanwhile, but a settle (which takes no lock, so that a
# long stage transaction never blocks other machines' reserves) may commit between two reads. It
# moves money from `reservations` (active → settled) to `usage` in one commit. On PostgreSQL (READ
# COMMITTED: each statement sees what was committed when it began) reading usage first and then
# reservations could miss that money in both; reservations first can only count it twice, which
# errs on the safe side for one decision. On SQLite BEGIN IMMEDIATE excludes every other writer.
_READ_ORDER = "reservations, then usage"


def usd_limit_nusd(usd: float) -> int:
    """A USD limit in nano-USD, rounded down so that a limit never admits more than was set."""
    return int((Decimal(str(usd)) * NANO_PER_USD).to_integral_value(rounding=ROUND_FLOOR))


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


class LedgerBudget:
    """The `BudgetGuard` over the SQLite ledger.

    `db` must be the same connection the caller commits usage rows on: `settle` and `release`
    join its open transaction (a second connection would wait on the first one's write lock).
    """

    def __init__(self, db: Database, settings: BudgetSettings, clock: Clock,
                 *, owner: dict[str, Any] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.store = ReservationStore(db)
        # pid, pid start time and host of the process the reservations belong to (tvdb.owner)
        self.owner = owner or process_owner()
        self.timezone = settings.timezone
        self.daily_limit_nusd = usd_limit_nusd(settings.daily_budget_usd)
        self.default_run_budget_usd = settings.run_budget_usd
        self.ttl = dt.timedelta(seconds=settings.reservation_ttl_s)
        self.hourly_limits: Mapping[str, int | None] = {
            OPENAI: None, LLAMAPARSE: None, **settings.hourly_requests,
        }

    # -- BudgetGuard -------------------------------------------------------------------------

    def reserve(self, request: SpendRequest) -> Reservation:
        """Hold `request.estimate_nusd` and one request slot, or refuse without spending.

        Raises PriceUnknownError (no price: never treated as $0), CostLimitExceeded (daily or run
        budget; amounts in USD) or RateLimitExceeded (hourly limit; `retry_after` in seconds).
        """
        if request.estimate_nusd is None:
            raise PriceUnknownError(request.service, request.model)
        if request.estimate_nusd < 0:
            raise ValueError(f"negative estimate {request.estimate_nusd} nano-USD")
        now = request.at or self.clock.now()
        refusal: Refusal | None = None
        reservation_id = uuid.uuid4().hex
        reservation = Reservation(reservation_id, request, now + self.ttl)
        with transaction(self.db):
            self.db.lock_budget_window()
            self.store.sweep(now)
            refusal = self._refusal(now, request)
            if refusal is None:
                self.store.insert(reservation, now, self.owner)
        # Raised after COMMIT so that the sweep above is kept.
        if refusal is not None:
            raise refusal
        return reservation

    def settle(self, reservation: Reservation, actual_nusd: int | None) -> None:
        """Mark the reservation settled with the actual cost (joins the caller's transaction)."""
        if reservation.reservation_id is not None:
            self.store.settle(reservation.reservation_id, actual_nusd, self.clock.now())

    def settle_assumed(self, reservation: Reservation) -> None:
        """Settle at the reserved estimate as spent (`assumed`; joins the caller's transaction)."""
        if reservation.reservation_id is not None:
            self.store.assume(reservation.reservation_id, self.clock.now())

    def release(self, reservation: Reservation) -> None:
        """Free the reservation of a call proven not processed (joins the caller's transaction)."""
        if reservation.reservation_id is not None:
            self.store.release(reservation.reservation_id, self.clock.now())

    # -- reading -----------------------------------------------------------------------------

    def sweep(self, now: dt.datetime | None = None) -> int:
        """Turn reservations whose owner is gone into assumed spend; returns how many."""
        with transaction(self.db):
            self.db.lock_budget_window()
            return self.store.sweep(now or self.clock.now())

    def forecast(self, requests: Sequence[SpendRequest]) -> BudgetForecast:
        """Every budget that applies to `requests` taken together, and whether they fit. No writes.

        Daily: all priced estimates; run: the estimates of each (run_id, run budget); hourly: the
        number of requests per service. `forecast([])` is the current state of every budget.
        """
        now = self.clock.now()
        priced = [r for r in requests if r.estimate_nusd is not None]
        by_stage: dict[str, int] = {}
        for r in priced:
            by_stage[r.scope.stage] = by_stage.get(r.scope.stage, 0) + (r.estimate_nusd or 0)
        total = sum(by_stage.values())
        checks = [self._daily_check(now, total)]
        runs: dict[tuple[str | None, float | None], int] = {}
        for r in priced:
            key = (r.scope.run_id, r.run_budget_usd)
            runs[key] = runs.get(key, 0) + (r.estimate_nusd or 0)
        for (run_id, run_budget), amount in runs.items():
            run_check = self._run_check(now, run_id, run_budget, amount)
            if run_check is not None:
                checks.append(run_check)
        limited = {s for s, limit in self.hourly_limits.items() if limit is not None}
        for service in sorted(limited | {r.service for r in requests}):
            hourly = self._hourly_check(now, service, sum(1 for r in requests if r.service == service))
            if hourly is not None:
                checks.append(hourly[0])
        unpriced = tuple(sorted({(r.service, r.model) for r in requests if r.estimate_nusd is None}))
        return BudgetForecast(tuple(checks), total, by_stage, unpriced)

    def deferred_until(self, exc: Refusal) -> dt.datetime | None:
        """When a call refused with `exc` (raised by `reserve`) could fit again, in UTC.

        Daily budget: the start of the next day in the budget's time zone. Hourly limit: now +
        `retry_after`. None when waiting cannot help: a run budget (a run's spend only grows), a
        request larger than the whole limit, or a limit of 0 requests.
        """
        if isinstance(exc, RateLimitExceeded):
            if exc.retry_after is None:
                return None
            return self.clock.now() + dt.timedelta(seconds=exc.retry_after)
        match = _DAILY_LABEL.fullmatch(exc.window)
        if match is None or exc.requested > exc.limit:
            return None
        tz = ZoneInfo(match[2])
        next_day = dt.date.fromisoformat(match[1]) + dt.timedelta(days=1)
        return dt.datetime.combine(next_day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)

    # -- internals ---------------------------------------------------------------------------

    def _refusal(self, now: dt.datetime, request: SpendRequest) -> Refusal | None:
        amount = request.estimate_nusd or 0
        money = [self._daily_check(now, amount), self._run_check(now, request.scope.run_id,
                                                                  request.run_budget_usd, amount)]
        for check in money:
            if check is not None and not check.fits:
                return CostLimitExceeded(
                    spent=nusd_to_usd(check.used), reserved=nusd_to_usd(check.reserved), window=check.window,
                    limit=nusd_to_usd(check.limit), requested=nusd_to_usd(check.requested), fix=how_to_fix(check),
                )
        hourly = self._hourly_check(now, request.service, 1)
        if hourly is not None and not hourly[0].fits:
            check, retry_after = hourly
            wait = "" if retry_after is None else f"; a slot frees in {retry_after:.0f} s"
            return LocalRequestLimitExceeded(
                f"{request.service} hourly request limit of {check.limit} reached: "
                f"{counted(check.used, 'real request')} in the last hour and {check.reserved} in flight{wait}; "
                f"{how_to_fix(check)}",
                limit=check.limit, window="hour", retry_after=retry_after, service=request.service,
                code=LOCAL_REQUEST_LIMIT,
            )
        return None

    def _daily_check(self, now: dt.datetime, requested: int) -> BudgetCheck:
        day = day_window(now, self.timezone)
        reserved = self.store.held_nusd()  # reservations before usage: see `_READ_ORDER`
        return BudgetCheck(
            "daily", day.label, NUSD, self.daily_limit_nusd, real_spend_nusd(self.db, day), reserved, requested,
        )

    def _run_check(
        self, now: dt.datetime, run_id: str | None, run_budget_usd: float | None, requested: int
    ) -> BudgetCheck | None:
        budget = run_budget_usd if run_budget_usd is not None else self.default_run_budget_usd
        if budget is None:
            return None
        used = reserved = 0
        if run_id is not None:  # no run yet (an estimate): only the requests themselves count
            reserved = self.store.held_nusd(run_id=run_id)  # before usage: see `_READ_ORDER`
            used = real_spend_nusd(self.db, run_id=run_id)
        limit = usd_limit_nusd(budget)
        return BudgetCheck("run", f"run {run_id or '(new)'}", NUSD, limit, used, reserved, requested)

    def _hourly_check(
        self, now: dt.datetime, service: str, requested: int
    ) -> tuple[BudgetCheck, float | None] | None:
        """The sliding-hour check for `service` and the seconds until enough slots free (None: never).

        A request attempt at time t holds a slot during [t, t + 3600 s); a reservation holds one
        from its creation until it leaves `active` (its usage row then holds it).
        """
        limit = self.hourly_limits.get(service)
        if limit is None:
            return None
        since = now - dt.timedelta(seconds=HOUR_S)
        held = self.store.held_slots(service)  # before usage: see `_READ_ORDER`
        rows, folded = real_attempts(self.db, service, since, now)
        check = BudgetCheck(f"hourly {service}", "hour", REQUESTS, limit, rows + folded, held, requested)
        if check.fits or limit == 0 or requested > limit:
            return check, None
        if folded:  # aggregated attempts carry no times: assume they free last
            return check, float(HOUR_S)
        # The slot that must free last is the (used + reserved + requested − limit)-th oldest.
        times = sorted(attempt_times(self.db, service, since) + self.store.slot_times(service))
        oldest = times[check.used + check.reserved + requested - limit - 1]
        frees_at = _parse_ts(oldest) + dt.timedelta(seconds=HOUR_S)
        return check, max(1.0, (frees_at - now).total_seconds())
