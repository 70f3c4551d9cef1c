"""The service router, call by call: modes and overrides at every precedence level and the reason each
names; hybrid's fallback for each reason (no key, unhealthy, circuit open, budget, hourly cap,
real_until_pct, transient failure after retries); permanent errors never hidden; the breaker's timing."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import KEY, emulator, usage_rows
from tvdb.clock import FakeClock
from tvdb.config import RetrySettings, Settings, resolve_settings
from tvdb.db import open_db
from tvdb.domain import EmbeddingRequest, Implementation, Mode
from tvdb.emulator.server import EmulatorServer
from tvdb.errors import ConfigError, PermanentServiceError, ServiceUnavailableError
from tvdb.ledger.budget import LedgerBudget
from tvdb.ledger.guard import CallScope
from tvdb.ledger.prices import PriceTable
from tvdb.services.breaker import CircuitBreaker
from tvdb.services.calls import Completed, ServiceCaller
from tvdb.services.embedding import embedding_call_spec
from tvdb.services.factory import budget_settings, build_router
from tvdb.services.retry import ServiceRetryPolicy
from tvdb.services.router import ServiceRouter

MODEL = "text-embedding-3-small"


def _settings(tmp_path: Path, *, env: dict[str, str] | None = None, yaml: str | None = None,
              scenario: dict[str, Any] | None = None, flags: dict[str, Any] | None = None) -> Settings:
    if yaml is not None:
        (tmp_path / "tvdb.yaml").write_text(yaml)
    return resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), **(env or {})},
                            scenario=scenario, flags=flags, dotenv=False)


def _router(settings: Settings, clock: FakeClock, *, budget: bool = False) -> ServiceRouter:
    db = open_db(settings.database_path)
    retry = ServiceRetryPolicy(RetrySettings(max_attempts=3), sleep=clock.sleep, rng=random.Random(0))
    caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, retry=retry,
                           budget=LedgerBudget(db, budget_settings(settings), clock) if budget else None)
    return build_router(settings, caller, clock)


async def _embed(router: ServiceRouter, text: str = "hello tide sensor") -> Completed[Any]:
    request = EmbeddingRequest((text,), MODEL, 1536, 3)
    done = await router.call(router.embedder, CallScope("run-1", "s", "embed"),
                             lambda e, p: embedding_call_spec(e, request, Settings(), provenance=p))
    done.commit(router.caller.db, router.caller.budget)
    return done


def _provenance(done: Completed[Any]) -> tuple[str, str | None]:
    return str(done.row.implementation), done.row.provenance


def _hybrid(tmp_path: Path, server: EmulatorServer, **env: str) -> Settings:
    return _settings(tmp_path, env={"TVDB_MODE": "hybrid", "OPENAI_API_KEY": KEY,
                                    "OPENAI_BASE_URL": server.openai_base_url, **env})


# -- modes and overrides at every level ------------------------------------------------------------

MATRIX = [
    # (env, tvdb.yaml, scenario, flags) → (parser implementation, reason), (embedder implementation, reason)
    ({}, None, None, None, ("mock", "mode mock"), ("mock", "mode mock")),
    ({"TVDB_MODE": "hybrid"}, None, None, None,
     ("mock", "no LLAMA_CLOUD_API_KEY"), ("mock", "no OPENAI_API_KEY")),
    ({"SERVICE_MODE": "hybrid"}, None, None, None,
     ("mock", "no LLAMA_CLOUD_API_KEY"), ("mock", "no OPENAI_API_KEY")),
    ({"SERVICE_MODE": "real", "TVDB_MODE": "mock"}, None, None, None,
     ("mock", "set by TVDB_MODE"), ("mock", "set by TVDB_MODE")),
    ({"OPENAI_API_KEY": KEY}, None, {"mode": "real", "services": {"parser": "mock"}}, None,
     ("mock", "set by scenario: services.parser"), ("real", "set by scenario: mode")),
    ({"OPENAI_API_KEY": KEY, "TVDB_SERVICES_EMBEDDER": "real"}, "mode: hybrid\n", None, None,
     ("mock", "no LLAMA_CLOUD_API_KEY"), ("real", "set by TVDB_SERVICES_EMBEDDER")),
    ({}, "mode: real\nservices: {parser: mock}\n", {"services": {"embedder": "real"}},
     {"services": {"embedder": "mock"}},
     ("mock", "set by tvdb.yaml: services.parser"), ("mock", "set by --service embedder=mock")),
    ({"OPENAI_API_KEY": KEY}, None, {"mode": "mock"}, {"mode": "real", "services": {"parser": "mock"}},
     ("mock", "set by --service parser=mock"), ("real", "set by --mode")),
    ({"OPENAI_API_KEY": KEY, "TVDB_MODE": "hybrid"}, None, None, None,
     ("mock", "no LLAMA_CLOUD_API_KEY"), ("real", "hybrid: openai available")),
]


@pytest.mark.parametrize(("env", "yaml", "scenario", "flags", "parser", "embedder"), MATRIX)
async def test_mode_override_reason_matrix(
    tmp_path: Path, env: dict[str, str], yaml: str | None, scenario: dict[str, Any] | None,
    flags: dict[str, Any] | None, parser: tuple[str, str], embedder: tuple[str, str],
) -> None:
    with emulator() as server:
        settings = _settings(tmp_path, env={**env, "OPENAI_BASE_URL": server.openai_base_url}, yaml=yaml,
                             scenario=scenario, flags=flags)
        router = _router(settings, FakeClock())
        p = await router.route(router.parser)
        e = await router.route(router.embedder)
        if embedder[0] == "real" and not embedder[1].startswith("hybrid"):  # real mode names the endpoint
            embedder = (embedder[0], f"{embedder[1]} (OpenAI API at {server.openai_base_url})")
        assert (str(p.provenance.implementation), p.provenance.reason) == parser
        assert (str(e.provenance.implementation), e.provenance.reason) == embedder
        done = await _embed(router)
        assert _provenance(done) == embedder  # the ledger row says the same
        await router.aclose()


def test_real_mode_without_a_key_names_the_variable(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flags={"mode": "real", "services": {"parser": "mock"}})
    with pytest.raises(ConfigError, match=r"embedder runs in real mode \(set by --mode\).*set OPENAI_API_KEY"):
        _router(settings, FakeClock())
    settings = _settings(tmp_path, env={"TVDB_SERVICES_PARSER": "real"})
    needs = r"parser runs in real mode \(set by TVDB_SERVICES_PARSER\).*LLAMA_CLOUD_API_KEY"
    with pytest.raises(ConfigError, match=needs):
        _router(settings, FakeClock())



def test_real_mode_names_every_missing_key_in_one_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flags={"mode": "real"}, env={"TVDB_SERVICES_EMBEDDER": "real"})
    with pytest.raises(ConfigError) as raised:
        _router(settings, FakeClock())
    assert str(raised.value) == (
        "real mode needs 2 API keys that are not set: the parser (set by --mode) needs LLAMA_CLOUD_API_KEY; "
        "the embedder (set by TVDB_SERVICES_EMBEDDER) needs OPENAI_API_KEY. Set LLAMA_CLOUD_API_KEY and "
        "OPENAI_API_KEY (or llama_cloud_api_key and openai_api_key in tvdb.yaml) (to try real mode offline, "
        "start `tvdb emulate` and set LLAMA_CLOUD_BASE_URL and OPENAI_BASE_URL to its address), or run them "
        "locally with --service parser=mock --service embedder=mock")

# -- hybrid: each reason to fall back ---------------------------------------------------------------

async def test_no_key_means_local_and_no_probe(tmp_path: Path) -> None:
    with emulator() as server:
        settings = _settings(tmp_path, env={"TVDB_MODE": "hybrid", "OPENAI_BASE_URL": server.openai_base_url})
        router = _router(settings, FakeClock())
        assert _provenance(await _embed(router)) == ("mock", "no OPENAI_API_KEY")
        assert server.count("GET /v1/models") == 0 and server.count() == 0


async def test_unhealthy_service_falls_back_and_the_probe_is_cached(tmp_path: Path) -> None:
    clock = FakeClock()
    with emulator() as server:
        settings = _hybrid(tmp_path, server)
    router = _router(settings, clock)  # the emulator is stopped: nothing listens on its port
    assert _provenance(await _embed(router)) == ("mock", "openai unhealthy: connection refused")
    assert _provenance(await _embed(router)) == ("mock", "openai unhealthy: connection refused")
    assert router.embedder.health is not None and router.embedder.health.probes == 1  # cached for the TTL
    clock.advance(settings.router.health_ttl_s)
    await _embed(router)
    assert router.embedder.health.probes == 2


async def test_healthy_service_is_probed_once_with_the_key(tmp_path: Path) -> None:
    with emulator() as server:
        router = _router(_hybrid(tmp_path, server), FakeClock())
        for _ in range(3):
            assert _provenance(await _embed(router)) == ("real", "hybrid: openai available")
        assert server.count("GET /v1/models") == 1 and server.count() == 3
        seen = [r for r in server.requests if r.path == "/v1/models"]
        assert seen[0].headers["authorization"] == f"Bearer {KEY}"
        await router.aclose()


async def test_transient_failure_is_retried_then_falls_back_and_counts_toward_the_breaker(tmp_path: Path) -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 503, "times": 3}]) as server:
        router = _router(_hybrid(tmp_path, server), FakeClock())
        done = await _embed(router)
        assert _provenance(done) == ("mock", "openai failed after 3 attempts: 503")
        assert server.count() == 3  # the one retry policy's three attempts, then no more real requests
        assert router.embedder.breaker.failures == 1
        rows = usage_rows(router.caller.db)
        assert [(r["implementation"], r["status"], r["http_status"]) for r in rows] == [
            ("real", "error", 503), ("real", "error", 503), ("real", "error", 503), ("mock", "ok", None)]
        assert all(r["provenance"] == "hybrid: openai available" for r in rows[:3])
        assert rows[3]["cost_nusd"] == 0 and rows[3]["would_cost_nusd"] > 0
        # the next call finds the service well again
        assert _provenance(await _embed(router)) == ("real", "hybrid: openai available")
        assert router.embedder.breaker.failures == 0
        await router.aclose()


async def test_permanent_request_error_is_not_hidden_by_a_fallback(tmp_path: Path) -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 400}]) as server:
        router = _router(_hybrid(tmp_path, server), FakeClock())
        with pytest.raises(PermanentServiceError):
            await _embed(router)
        rows = usage_rows(router.caller.db)
        assert [(r["implementation"], r["status"]) for r in rows] == [("real", "error")]
        assert router.embedder.breaker.failures == 0  # the service answered: it is up
        await router.aclose()


async def test_real_mode_never_falls_back(tmp_path: Path) -> None:
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 503}]) as server:
        settings = _settings(tmp_path, env={"TVDB_MODE": "real", "TVDB_SERVICES_PARSER": "mock",
                                            "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url})
        router = _router(settings, FakeClock())
        with pytest.raises(ServiceUnavailableError):
            await _embed(router)
        assert server.count("GET /v1/models") == 0  # real mode does not ask: it uses the service
        assert {r["implementation"] for r in usage_rows(router.caller.db)} == {"real"}
        await router.aclose()


async def test_budget_refusal_falls_back_before_any_request(tmp_path: Path) -> None:
    with emulator() as server:
        router = _router(_hybrid(tmp_path, server, TVDB_DAILY_BUDGET_USD="0"), FakeClock(), budget=True)
        assert _provenance(await _embed(router)) == ("mock", "daily budget $0 reached")
        assert server.count() == 0
        await router.aclose()


async def test_run_budget_refusal_falls_back(tmp_path: Path) -> None:
    with emulator() as server:
        router = _router(_hybrid(tmp_path, server, TVDB_BUDGET_MAX_USD="0"), FakeClock(), budget=True)
        assert _provenance(await _embed(router)) == ("mock", "run budget $0 reached")
        assert server.count() == 0
        await router.aclose()


async def test_hourly_cap_falls_back(tmp_path: Path) -> None:
    with emulator() as server:
        router = _router(_hybrid(tmp_path, server, TVDB_LIMITS_OPENAI_REQUESTS_PER_HOUR="1"), FakeClock(),
                         budget=True)
        assert _provenance(await _embed(router))[0] == "real"
        assert _provenance(await _embed(router)) == ("mock", "openai hourly cap 1/h reached")
        assert server.count() == 1
        await router.aclose()


async def test_real_until_pct_keeps_the_last_of_the_budget(tmp_path: Path) -> None:
    with emulator() as server:
        # 3 tokens cost 60 nano-USD; a budget of 100 nano-USD is 60 % used after the first call
        router = _router(_hybrid(tmp_path, server, TVDB_DAILY_BUDGET_USD="0.0000001", TVDB_HYBRID_REAL_UNTIL_PCT="50"),
                         FakeClock(), budget=True)
        assert _provenance(await _embed(router))[0] == "real"
        assert _provenance(await _embed(router)) == ("mock", "budget 60% used (real_until_pct 50)")
        assert server.count() == 1
        await router.aclose()


# -- the circuit breaker ----------------------------------------------------------------------------

def test_breaker_opens_after_the_threshold_and_half_opens_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("openai", failure_threshold=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        breaker.failure()
        assert breaker.admit() == "closed"
    clock.advance(5)
    breaker.failure()
    assert breaker.state == "open" and breaker.admit() == "open"
    assert breaker.reason() == "openai circuit open since 00:00:05 after 3 failures"
    clock.advance(29.9)
    assert breaker.admit() == "open"
    clock.advance(0.1)
    assert breaker.admit() == "trial" and breaker.admit() == "busy"  # exactly one trial call
    breaker.failure()  # the trial failed: open again, for a whole cooldown
    assert breaker.admit() == "open"
    clock.advance(30)
    assert breaker.admit() == "trial"
    breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0 and breaker.admit() == "closed"


async def test_router_skips_an_open_circuit_then_sends_one_trial(tmp_path: Path) -> None:
    clock = FakeClock()
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 503, "times": 6}]) as server:
        router = _router(_hybrid(tmp_path, server, TVDB_ROUTER_FAILURE_THRESHOLD="2", TVDB_ROUTER_COOLDOWN_S="30"),
                         clock)
        for _ in range(2):
            assert _provenance(await _embed(router))[1] == "openai failed after 3 attempts: 503"
        sent = server.count()
        assert sent == 6
        reason = _provenance(await _embed(router))[1]
        assert reason is not None and reason.startswith("openai circuit open since ")
        assert reason.endswith("after 2 failures")
        assert server.count() == sent  # open: not even tried
        clock.advance(30)
        probes = server.count("GET /v1/models")
        # half-open: two calls at once; one is the trial (after a fresh probe), the other goes local
        first, second = await asyncio.gather(_embed(router, "trial one"), _embed(router, "trial two"))
        assert sorted([_provenance(first), _provenance(second)]) == [
            ("mock", "openai circuit half-open: a trial call is in flight"),
            ("real", "hybrid: trial call after the circuit cooled down")]
        assert server.count("GET /v1/models") == probes + 1
        assert router.embedder.breaker.state == "closed"
        await router.aclose()


async def test_forced_space_uses_that_implementation_whatever_the_mode(tmp_path: Path) -> None:
    router = _router(_settings(tmp_path), FakeClock())  # mock mode, no key
    route = await router.route(router.embedder, want=Implementation.MOCK, why="query in the space it searches")
    assert route.provenance.reason == "query in the space it searches"
    with pytest.raises(ConfigError, match="no OPENAI_API_KEY"):
        await router.route(router.embedder, want=Implementation.REAL)


def test_a_resumed_run_names_its_stored_modes_as_the_reason(tmp_path: Path) -> None:
    from tvdb.scenarios.runner import restore_settings
    from tvdb.services.modes import service_mode

    current = _settings(tmp_path, env={"TVDB_MODE": "real"})  # today's environment says real…
    resumed = restore_settings({"mode": "hybrid", "services": {"parser": "mock", "embedder": None}}, current)
    assert service_mode(resumed, "parser") == (Mode.MOCK, "set by the run being resumed: services.parser")
    assert service_mode(resumed, "embedder") == (Mode.HYBRID, "set by the run being resumed: mode")  # …the run wins


async def test_a_job_the_service_never_finished_falls_back_like_an_outage(tmp_path: Path) -> None:
    """A parse job the client cancelled for taking too long (a permanent error with code `timeout`:
    never re-sent, a new upload would be billed again) is the service's fault, not the request's."""
    from tvdb.errors import ErrorCode
    from tvdb.services.local.embedder import HashEmbedder
    from tvdb.services.router import Lane

    class StuckJobs:
        service = "openai"
        implementation = Implementation.REAL
        identity = "stuck"

        async def embed(self, request: EmbeddingRequest) -> Any:
            exc = PermanentServiceError("job stuck PENDING; cancelled after 300 s", service="openai")
            exc.error_code = ErrorCode.TIMEOUT
            raise exc

    clock = FakeClock()
    router = _router(_settings(tmp_path), clock)
    breaker = CircuitBreaker("openai", failure_threshold=5, cooldown_s=30, clock=clock)
    router.embedder = Lane("embedder", Mode.HYBRID, "mode hybrid", HashEmbedder(), StuckJobs(), breaker)
    assert _provenance(await _embed(router)) == ("mock", "openai failed after 1 attempt: timeout")
    assert breaker.failures == 1
