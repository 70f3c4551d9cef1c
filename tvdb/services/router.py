"""The service router: for every call (each parse job, each embedding request) it decides which
implementation serves it, and says why (provenance).

    mock     the local implementation; never opens a socket
    real     the real client, or fail (a missing key is a ConfigError, exit 2, before anything runs)
    hybrid   real when all hold, checked in this order, else local with the first that failed:
               1. the key is set                          "no OPENAI_API_KEY"   (no probe without one)
               2. the circuit breaker lets the call pass  "openai circuit open since 12:03:41 after 5 failures"
               3. the service is healthy (cached probe)   "openai unhealthy: connection refused"
               4. today's spend is under real_until_pct   "budget 92% used (real_until_pct 90)"
               5. the budget guard admits the reservation "daily budget $1 reached"
               6. the hourly limit allows it               "openai hourly cap 100/h reached"
             5 and 6 are the ledger's own checks (tvdb.ledger.budget), made when the call reserves.
             A transient failure is retried by the one retry policy first; if it still fails, that
             call runs local ("openai failed after 3 attempts: 503") and counts toward the breaker.
             A permanent error caused by the request (400, 422, a protected PDF) fails the job, as in
             real mode: a fallback would hide it.

`ServiceRouter` owns, per service, both implementations, the health check and the breaker, and
runs calls through the `ServiceCaller` (budget reservation, the one retry policy, usage rows), so
every ledger row carries the implementation that ran and the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from tvdb.domain import Implementation, Mode
from tvdb.errors import (
    ConfigError,
    CostLimitExceeded,
    DocumentError,
    ErrorCode,
    LocalRequestLimitExceeded,
    ServiceError,
    ServiceUnavailableError,
    TransientServiceError,
)
from tvdb.ledger.guard import CallScope
from tvdb.services.breaker import CircuitBreaker
from tvdb.services.calls import CallSpec, Completed, ServiceCaller
from tvdb.services.health import HealthCheck
from tvdb.services.modes import ROLE_INFO, Role
from tvdb.services.protocols import Embedder, Parser

S = TypeVar("S", Parser, Embedder)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which implementation served a call, and the human reason (written on its ledger row)."""

    implementation: Implementation
    reason: str


@dataclass(frozen=True, slots=True)
class Route(Generic[S]):
    impl: S
    provenance: Provenance
    trial: bool = False  # the breaker's half-open trial call


@dataclass
class Lane(Generic[S]):
    """One service as the router sees it. `real` is None when it cannot be built (`unavailable` says why)."""

    role: Role
    mode: Mode
    mode_reason: str
    local: S
    real: S | None
    breaker: CircuitBreaker
    health: HealthCheck | None = None
    unavailable: str | None = None
    where: str = ""  # " (OpenAI API at <redacted base URL>)": real mode's reason names the endpoint

    @property
    def service(self) -> str:
        return ROLE_INFO[self.role].service

    @property
    def identity(self) -> str:
        """What the stored results of this service depend on (part of the reuse key)."""
        if self.mode is Mode.MOCK:
            return self.local.identity
        real = self.real.identity if self.real is not None else f"unavailable ({self.unavailable})"
        return real if self.mode is Mode.REAL else f"hybrid: {real} | {self.local.identity}"


@dataclass
class ServiceRouter:
    """Routes every call of a run. `daily_share()` is today's real spend + reservations as a share
    of the daily budget (0..1, None when unknown); it is read only when `real_until_pct` is set."""

    caller: ServiceCaller
    parser: Lane[Parser]
    embedder: Lane[Embedder]
    real_until_pct: float | None = None
    daily_share: Callable[[], float | None] = lambda: None
    closers: tuple[Callable[[], Awaitable[None]], ...] = field(default=())
    # the scenario's fault plan as JSON ("" without faults): a fault can change what a job stores
    # (a `partial` parse completes without the pages it failed), so it is part of the reuse key
    faults: str = ""

    @property
    def modes(self) -> dict[Role, Mode]:
        return {"parser": self.parser.mode, "embedder": self.embedder.mode}

    async def aclose(self) -> None:
        """Release network clients (connection pools) at the end of a run."""
        for close in self.closers:
            await close()

    async def route(self, lane: Lane[S], *, want: Implementation | None = None, why: str = "") -> Route[S]:
        """The implementation for the next call of `lane`, and why. `want` forces one (e.g. a query
        embedded in the space of stored vectors); ConfigError if the real one is wanted but missing."""
        if want is Implementation.MOCK or (want is None and lane.mode is Mode.MOCK):
            return Route(lane.local, Provenance(Implementation.MOCK, why or lane.mode_reason))
        if lane.real is None:
            if want is None and lane.mode is Mode.HYBRID:
                return Route(lane.local, Provenance(Implementation.MOCK, lane.unavailable or "unavailable"))
            raise ConfigError(f"{lane.role}: {lane.unavailable}")
        if want is Implementation.REAL and lane.mode is Mode.HYBRID:
            await self._still_up(lane)
        if want is Implementation.REAL or lane.mode is Mode.REAL:
            return Route(lane.real, Provenance(Implementation.REAL, why or lane.mode_reason + lane.where))
        return await self._hybrid(lane, lane.real)

    async def _still_up(self, lane: Lane[S]) -> None:
        """A call that must run real in hybrid mode (a query in the space of real vectors) is not sent
        to a service known to be down: open circuit, or a fresh probe failing after a failed call.
        Raises ServiceUnavailableError (no request, no ledger row) instead of retrying into it."""
        if lane.breaker.state == "open":
            raise ServiceUnavailableError(lane.breaker.reason(), service=lane.service)
        if lane.health is not None and lane.breaker.failures:
            health = await lane.health.check(fresh=True)
            if not health.healthy:
                raise ServiceUnavailableError(f"{lane.service} unhealthy: {health.detail}", service=lane.service)

    async def _hybrid(self, lane: Lane[S], real: S) -> Route[S]:
        def local(reason: str) -> Route[S]:
            return Route(lane.local, Provenance(Implementation.MOCK, reason))

        admission = lane.breaker.admit()
        if admission == "open":
            return local(lane.breaker.reason())
        if admission == "busy":
            return local(f"{lane.service} circuit half-open: a trial call is in flight")
        trial = admission == "trial"
        if lane.health is not None:
            health = await lane.health.check(fresh=trial)  # a half-open breaker asks the service again
            if not health.healthy:
                if trial:
                    lane.breaker.failure()
                return local(f"{lane.service} unhealthy: {health.detail}")
        if self.real_until_pct is not None:
            share = self.daily_share()
            if share is not None and share * 100 >= self.real_until_pct:
                if trial:
                    lane.breaker.abandon()
                return local(f"budget {share * 100:.0f}% used (real_until_pct {self.real_until_pct:g})")
        reason = "hybrid: trial call after the circuit cooled down" if trial else f"hybrid: {lane.service} available"
        return Route(real, Provenance(Implementation.REAL, reason), trial=trial)

    async def call(
        self, lane: Lane[S], scope: CallScope, spec_for: Callable[[S, Provenance], CallSpec[T]], *,
        want: Implementation | None = None, why: str = "",
    ) -> Completed[T]:
        """Route, then make the metered call (`spec_for(impl, provenance)`); in hybrid mode fall back to
        the local implementation for the reasons in the module docstring. Raises what the call raises
        otherwise (DocumentError, ServiceError, CostLimitExceeded in real mode, …)."""
        route = await self.route(lane, want=want, why=why)
        may_fall_back = lane.mode is Mode.HYBRID and want is None
        if route.provenance.implementation is not Implementation.REAL or not may_fall_back:
            return await self._send(lane, route, scope, spec_for, may_fall_back=False)
        try:
            return await self._send(lane, route, scope, spec_for, may_fall_back=True)
        except CostLimitExceeded as exc:
            kind = exc.window.split(" ", 1)[0]
            reason = f"{kind} budget ${exc.limit:g} reached"
        except LocalRequestLimitExceeded as exc:
            reason = f"{lane.service} hourly cap {exc.limit}/h reached"
        except _Exhausted as exc:
            tries = f"{exc.attempts} attempts" if exc.attempts != 1 else "1 attempt"
            reason = f"{lane.service} failed after {tries}: {_short(exc.error)}"
        fallback = Provenance(Implementation.MOCK, reason)
        return await self.caller.call(scope, spec_for(lane.local, fallback))

    async def _send(
        self, lane: Lane[S], route: Route[S], scope: CallScope, spec_for: Callable[[S, Provenance], CallSpec[T]], *,
        may_fall_back: bool,
    ) -> Completed[T]:
        spec = spec_for(route.impl, route.provenance)
        if route.impl.implementation is Implementation.REPLAY:
            # the real client, answered from a cassette: no reservation, no money, a `replay` row
            spec = replace(spec, implementation=Implementation.REPLAY)
        if route.provenance.implementation is not Implementation.REAL:
            return await self.caller.call(scope, spec)
        attempts = 0
        inner = spec.send

        async def counted() -> T:
            nonlocal attempts
            attempts += 1
            return await inner()

        try:
            done = await self.caller.call(scope, replace(spec, send=counted))
        except LocalRequestLimitExceeded:
            lane.breaker.abandon()
            raise
        except (ServiceError, DocumentError) as exc:
            if isinstance(exc, ServiceError) and _service_unwell(exc):
                lane.breaker.failure()
                if may_fall_back:
                    raise _Exhausted(exc, attempts) from exc
            elif isinstance(exc, DocumentError) or exc.status is not None:
                lane.breaker.success()  # it answered (a 400, a protected PDF): it is up
            else:
                lane.breaker.abandon()  # refused before sending: says nothing about the service
            raise
        except BaseException:
            lane.breaker.abandon()
            raise
        lane.breaker.success()
        return done


def _service_unwell(exc: ServiceError) -> bool:
    """A transient failure that outlasted the retries, or a job the service accepted but never
    finished in time (a stuck parse job the client cancelled): not the request's fault."""
    return isinstance(exc, TransientServiceError) or exc.error_code is ErrorCode.TIMEOUT


class _Exhausted(Exception):
    """A failure of the service itself that outlasted the retry policy, in hybrid mode (falls back)."""

    def __init__(self, error: ServiceError, attempts: int) -> None:
        self.error = error
        self.attempts = attempts
        super().__init__(str(error))


def _short(exc: ServiceError) -> str:
    """"503", "timeout", "connection error": the stable part of why a call failed."""
    if exc.status is not None:
        return str(exc.status)
    if exc.error_code is ErrorCode.TIMEOUT:
        return "timeout"
    name = type(exc).__name__
    return {"ServiceTimeoutError": "timeout", "ServiceUnavailableError": "connection error",
            "MalformedResponseError": "malformed response"}.get(name, exc.code or name)



def fixed_router(
    caller: ServiceCaller, *, embedder: Embedder | None = None, parser: Parser | None = None
) -> ServiceRouter:
    """A router that always uses the given implementations, in the mode their `implementation` names
    (benchmarks and tests that hand in one embedder). A missing one is the local default."""
    from tvdb.services.local.embedder import HashEmbedder
    from tvdb.services.local.parser import LocalParser

    def lane(role: Role, impl: S) -> Lane[S]:
        real = impl.implementation is Implementation.REAL
        mode = Mode.REAL if real else Mode.MOCK
        breaker = CircuitBreaker(ROLE_INFO[role].service, failure_threshold=5, cooldown_s=30.0, clock=caller.clock)
        return Lane(role, mode, f"mode {mode}", impl, impl if real else None, breaker)

    return ServiceRouter(caller, lane("parser", parser or LocalParser()), lane("embedder", embedder or HashEmbedder()))
