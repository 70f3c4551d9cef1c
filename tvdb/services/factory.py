"""Builds the run-wide service policies from settings: the retry policy, the budget guard, faults, the router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import Implementation, Mode
from tvdb.errors import ConfigError
from tvdb.ledger.guard import BudgetGuard
from tvdb.ledger.prices import LLAMAPARSE, OPENAI
from tvdb.services.breaker import CircuitBreaker
from tvdb.services.calls import RetryPolicy, ServiceCaller
from tvdb.services.health import Probe, llamaparse_probe, openai_probe
from tvdb.services.modes import ROLE_INFO, Role, api_key, service_mode
from tvdb.storage import Database

if TYPE_CHECKING:
    from tvdb.faults.plan import FaultSchedule
    from tvdb.http import AsyncBaseTransport
    from tvdb.ledger.budget import BudgetSettings
    from tvdb.services.router import Lane, ServiceRouter

PROBES: dict[Role, Callable[[Settings, str, Clock, AsyncBaseTransport | None], Probe]] = {
    "parser": llamaparse_probe, "embedder": openai_probe,
}


def build_retry(settings: Settings, clock: Clock, *, seed: str = "") -> RetryPolicy:
    """The one retry policy (tenacity), sleeping on the run's clock; its jitter is seeded with `seed`."""
    from tvdb.services.retry import ServiceRetryPolicy

    return ServiceRetryPolicy(settings.retry, sleep=clock.sleep, seed=seed)


def budget_settings(settings: Settings) -> BudgetSettings:
    """The part of `settings` the budget guard enforces: daily_budget_usd, timezone, budget.max_usd,
    reservation_ttl_s and limits.<service>_requests_per_hour."""
    from tvdb.ledger.budget import BudgetSettings

    return BudgetSettings(
        daily_budget_usd=settings.daily_budget_usd, timezone=settings.timezone,
        run_budget_usd=settings.budget.max_usd, reservation_ttl_s=settings.reservation_ttl_s,
        hourly_requests={OPENAI: settings.limits.openai_requests_per_hour,
                         LLAMAPARSE: settings.limits.llamaparse_requests_per_hour},
    )


def build_budget(db: Database, settings: Settings, clock: Clock) -> BudgetGuard:
    """The ledger's guard: daily and run budgets, hourly request limits, reserved before real calls."""
    from tvdb.ledger.budget import LedgerBudget

    return LedgerBudget(db, budget_settings(settings), clock)


def build_faults(faults: Sequence[dict[str, Any]]) -> FaultSchedule | None:
    """One schedule for the run (call counters per service), or None without faults."""
    if not faults:
        return None
    from tvdb.faults.plan import FaultPlan

    return FaultPlan.of(list(faults)).schedule()


def build_router(
    settings: Settings, caller: ServiceCaller, clock: Clock, *, faults: FaultSchedule | None = None,
    transports: Mapping[str, AsyncBaseTransport] | None = None, replay: bool = False,
) -> ServiceRouter:
    """The run's router: for each service its local implementation, its real one when it can be built
    (key set), a health check and a breaker. `transports` replaces the network per ledger service
    ("openai", "llamaparse") for the real clients and their probes (tests).

    `replay`: the real clients answer from the cassette a `tvdb replay` runs under (no key needed, no
    health probe: nothing may reach the network; their ledger rows are `replay`).

    Raises ConfigError naming the environment variable when a service in real mode has no key.
    Scenario faults wrap the implementation that stands for the service: the local one in mock mode,
    the real client's HTTP transport otherwise (the local fallback of hybrid mode is never faulted).
    """
    from tvdb.services.local.embedder import HashEmbedder
    from tvdb.services.local.parser import LocalParser
    from tvdb.services.router import ServiceRouter

    transports = transports or {}
    if not replay:
        _check_keys(settings)
    sleep = clock.sleep
    closers: list[Callable[[], Awaitable[None]]] = []

    def lane(role: Role, local: Any, real_factory: Callable[[], Any]) -> Lane[Any]:
        from tvdb.services.health import HealthCheck
        from tvdb.services.router import Lane

        info = ROLE_INFO[role]
        mode, why = service_mode(settings, role)
        key = api_key(settings, role)
        if replay and key is None:
            from tvdb.services.remote.openai_embedder import REPLAY_KEY

            key = REPLAY_KEY  # a replay sends nothing anywhere; CI needs no secret for it
        real: Any = None
        unavailable = f"no {info.key_env}"
        health = None
        if mode is not Mode.MOCK and key is not None:
            try:
                real = real_factory()
            except NotAvailableYet as exc:
                unavailable = str(exc)
            else:
                closer = getattr(real, "aclose", None)
                if closer is not None:
                    closers.append(closer)
                if not replay:
                    health = HealthCheck(PROBES[role](settings, key, clock, transports.get(info.service)), clock,
                                         settings.router.health_ttl_s)
        if mode is Mode.REAL and real is None:
            raise ConfigError(_needs(role, why, unavailable))
        if faults is not None and mode is Mode.MOCK:
            from tvdb.faults.wrappers import FaultyEmbedder, FaultyParser

            local = (FaultyParser(local, faults, sleep=sleep,
                                  max_page_failure_ratio=settings.parse.max_page_failure_ratio)
                     if role == "parser" else FaultyEmbedder(local, faults, sleep=sleep))
        breaker = CircuitBreaker(info.service, failure_threshold=settings.router.failure_threshold,
                                 cooldown_s=settings.router.cooldown_s, clock=clock)
        shown = getattr(real, "shown_url", None)  # redacted: a token in the URL is a secret
        where = f" ({'OpenAI API' if role == 'embedder' else 'LlamaParse'} at {shown})" if shown else ""
        if replay and real is not None:
            where = " (answered from the cassette)"
        return Lane(role, mode, why, local, real, breaker, health, None if real is not None else unavailable, where)

    def real_embedder() -> Any:
        from tvdb.services.remote.openai_embedder import build_openai_embedder

        return build_openai_embedder(settings, faults=faults, transport=transports.get(OPENAI),
                                     implementation=Implementation.REPLAY if replay else Implementation.REAL)

    return ServiceRouter(
        caller, lane("parser", LocalParser(), lambda: real_parser(
            settings, faults, transports.get(LLAMAPARSE), clock,
            implementation=Implementation.REPLAY if replay else Implementation.REAL)),
        lane("embedder", HashEmbedder(), real_embedder), real_until_pct=settings.hybrid.real_until_pct,
        daily_share=_daily_share(caller), closers=tuple(closers),
        faults=faults.plan.model_dump_json() if faults is not None and faults.plan.faults else "",
    )


class NotAvailableYet(Exception):
    """A real implementation tvdb does not have yet."""


def real_parser(settings: Settings, faults: FaultSchedule | None, transport: AsyncBaseTransport | None,
                clock: Clock, *, implementation: Implementation = Implementation.REAL) -> Any:
    """The real LlamaParse v2 client (tvdb.services.remote.llamaparse_client), with the one retry
    policy for its status requests and, with `parse.webhook: true`, an in-process webhook receiver."""
    from tvdb.services.remote.llamaparse_client import build_real_parser

    return build_real_parser(settings, clock, retry=build_retry(settings, clock), faults=faults,
                             transport=transport, implementation=implementation)


def _check_keys(settings: Settings) -> None:
    """Raises one ConfigError naming every API key real mode needs and lacks, so that a user sets them
    all at once instead of meeting the next one on the next run (a single missing key: `_needs`)."""
    from tvdb.services.modes import ROLES

    missing = [(role, service_mode(settings, role)[1]) for role in ROLES
               if service_mode(settings, role)[0] is Mode.REAL and api_key(settings, role) is None]
    if len(missing) < 2:
        return
    infos = [ROLE_INFO[role] for role, _ in missing]
    envs = " and ".join(info.key_env for info in infos)
    needs = "; ".join(f"the {role} ({why}) needs {ROLE_INFO[role].key_env}" for role, why in missing)
    bases = " and ".join("OPENAI_BASE_URL" if role == "embedder" else "LLAMA_CLOUD_BASE_URL" for role, _ in missing)
    raise ConfigError(
        f"real mode needs {len(missing)} API keys that are not set: {needs}. Set {envs} (or "
        f"{' and '.join(info.key_setting for info in infos)} in tvdb.yaml) (to try real mode offline, start "
        f"`tvdb emulate` and set {bases} to its address), or run them locally with "
        f"{' '.join(f'--service {role}=mock' for role, _ in missing)}"
    )


def _needs(role: Role, why: str, unavailable: str) -> str:
    info = ROLE_INFO[role]
    if unavailable.startswith("no "):
        base_env = "OPENAI_BASE_URL" if role == "embedder" else "LLAMA_CLOUD_BASE_URL"
        offline = f" (to try real mode offline, start `tvdb emulate` and set {base_env} to its address)"
        return (f"the {role} runs in real mode ({why}) and needs an API key: set {info.key_env} "
                f"(or {info.key_setting} in tvdb.yaml){offline}, or run it locally with --service {role}=mock")
    return f"{unavailable}; keep the {role} local with `services: {{{role}: mock}}` (or --service {role}=mock)"


def _daily_share(caller: ServiceCaller) -> Callable[[], float | None]:
    """Today's real spend + active reservations / the daily budget, read from the guard's forecast."""
    forecast = getattr(caller.budget, "forecast", None)

    def share() -> float | None:
        if forecast is None:
            return None
        daily = next((c for c in forecast([]).checks if c.name == "daily"), None)
        if daily is None:
            return None
        if daily.limit <= 0:
            return 1.0
        return float((daily.used + daily.reserved) / daily.limit)

    return share
