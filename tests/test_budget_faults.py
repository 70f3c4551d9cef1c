"""The budget holds under every fault (issue 7): with a billing emulator as the provider's view,
provider-billed ≤ daily budget and ledger spent (assumed included) ≥ provider-billed, across pacing
waits longer than the reservation TTL, client timeouts on answered requests, malformed 200s and
connections lost after sending; only requests proven not processed release their reservation."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.billing import NUSD_PER_TOKEN, billing_emulator, ledger_spent_nusd
from tests.openai_support import KEY, settings_for
from tvdb.clock import FakeClock
from tvdb.config import RetrySettings, Settings
from tvdb.db import open_db
from tvdb.domain import EmbeddingRequest
from tvdb.errors import (
    CostLimitExceeded,
    MalformedResponseError,
    PermanentServiceError,
    ServiceTimeoutError,
    ServiceUnavailableError,
)
from tvdb.ledger.budget import LedgerBudget
from tvdb.ledger.guard import CallScope
from tvdb.ledger.prices import PriceTable
from tvdb.ledger.today import budget_status
from tvdb.services.calls import ServiceCaller
from tvdb.services.embedding import RatePacer, embed_batches, embedding_call_spec
from tvdb.services.factory import budget_settings
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.services.retry import ServiceRetryPolicy
from tvdb.tokens import count_tokens

TOKENS = 1000  # per request in these tests


def texts(n: int, tag: str = "t") -> list[str]:
    """`n` different texts of exactly TOKENS tokens each."""
    out = []
    for i in range(n):
        suffix = f" {tag}{i}"
        pad = TOKENS - count_tokens([suffix])[0]
        out.append("hello" + " hello" * (pad - 1) + suffix)
    return out


def caller_for(tmp_path: Path, settings: Settings, clock: FakeClock, *, attempts: int = 1) -> ServiceCaller:
    db = open_db(tmp_path / "ledger.db")
    retry = ServiceRetryPolicy(RetrySettings(max_attempts=attempts, initial_backoff_s=0.01),
                               sleep=clock.sleep, rng=random.Random(0))
    return ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, retry=retry,
                         budget=LedgerBudget(db, budget_settings(settings), clock))


async def embed(settings: Settings, caller: ServiceCaller, clock: FakeClock, inputs: list[str],
                run_id: str = "r1") -> list[Any]:
    """Embed one input per request; returns the errors of the requests that failed."""
    errors: list[Any] = []
    embedder = build_openai_embedder(settings)
    try:
        await embed_batches(inputs, embedder=embedder, caller=caller, settings=settings, clock=clock,
                            scope=CallScope(run_id, "faults", "embed", ("j1",)),
                            on_error=lambda _i, exc: errors.append(exc))
    finally:
        await embedder.aclose()
    return errors


def assert_budget_held(caller: ServiceCaller, billed_nusd: int, budget_nusd: int) -> tuple[int, int]:
    spent, assumed = ledger_spent_nusd(caller.db)
    assert billed_nusd <= budget_nusd, "the provider billed more than the daily budget"
    assert spent >= billed_nusd, "the ledger reports less than the provider billed"
    return spent, assumed


def budget_for(requests: float) -> float:
    return requests * TOKENS * NUSD_PER_TOKEN / 1e9


class HookedClock(FakeClock):
    """A FakeClock that runs `on_sleep` (once) when someone sleeps: another run acting mid-wait."""

    def __init__(self) -> None:
        super().__init__()
        self.on_sleep: Any = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        hook, self.on_sleep = self.on_sleep, None
        if hook is not None:
            await hook()


async def test_a_pacing_wait_longer_than_the_ttl_holds_no_reservation_that_can_lapse(tmp_path: Path) -> None:
    """Run A's second request waits 60 s for RPM pacing (TTL 2 s) while run B spends. The budget fits
    two requests: B takes the room A has not reserved yet, and A's second request is refused before
    it is sent (with the reservation taken before the wait, it would have lapsed and both been billed)."""
    clock = HookedClock()
    with billing_emulator() as (server, billing):
        settings = settings_for(server, daily_budget_usd=budget_for(2), reservation_ttl_s=2,
                                embedding={"timeout_s": 1}, parse={"timeout_s": 1})
        caller = caller_for(tmp_path, settings, clock)
        embedder = build_openai_embedder(settings)
        pacer = RatePacer(1, None, clock)

        def spec(text: str, paced: bool) -> Any:
            request = EmbeddingRequest((text,), settings.embedding.model, 1536, TOKENS)
            plain = embedding_call_spec(embedder, request, settings)
            return replace(plain, before_send=lambda: pacer.acquire(TOKENS)) if paced else plain

        async def run_b() -> None:
            done = await caller.call(CallScope("rB", "faults", "embed"), spec(texts(1, "b")[0], False))
            done.commit(caller.db, caller.budget)

        first, second = texts(2, "a")
        done = await caller.call(CallScope("rA", "faults", "embed"), spec(first, True))
        done.commit(caller.db, caller.budget)
        clock.on_sleep = run_b
        with pytest.raises(CostLimitExceeded):
            await caller.call(CallScope("rA", "faults", "embed"), spec(second, True))
        await embedder.aclose()
    assert clock.sleeps == [60.0]  # the pacing wait outlived the TTL
    assert billing.billed_requests == 2
    spent, assumed = assert_budget_held(caller, billing.billed_nusd, 2 * TOKENS * NUSD_PER_TOKEN)
    assert (spent, assumed) == (billing.billed_nusd, 0)


async def test_client_timeouts_on_answered_requests_count_as_assumed_spend(tmp_path: Path) -> None:
    """The emulator answers 200 after 0.4 s, the client gives up after 0.15 s: each attempt is billed.
    Each is settled at its estimate as spent (`assumed`); the third attempt no longer fits."""
    clock = FakeClock()
    with billing_emulator(latency_s=0.4) as (server, billing):
        settings = settings_for(server, daily_budget_usd=budget_for(2.5), reservation_ttl_s=2,
                                embedding={"timeout_s": 0.15}, parse={"timeout_s": 1})
        caller = caller_for(tmp_path, settings, clock, attempts=5)
        errors = await embed(settings, caller, clock, texts(1))
        # the emulator bills when it answers, after its latency: wait for the answers in flight
        import time

        deadline = time.monotonic() + 5
        while billing.billed_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(errors) == 1 and isinstance(errors[0], CostLimitExceeded)
    assert billing.billed_requests == 2
    spent, assumed = assert_budget_held(caller, billing.billed_nusd, int(2.5 * TOKENS * NUSD_PER_TOKEN))
    assert spent == assumed == 2 * TOKENS * NUSD_PER_TOKEN
    rows = caller.db.execute("SELECT status, error_code, assumed, cost_nusd, units FROM usage ORDER BY id").fetchall()
    assert rows == [("error", "ServiceTimeoutError", 1, 20_000, 1000.0)] * 2
    status = budget_status(caller.db, daily_budget_usd=settings.daily_budget_usd, timezone="UTC", now=clock.now())
    assert (status.spent_today_nusd, status.assumed_today_nusd, status.reserved_nusd) == (40_000, 40_000, 0)


async def test_a_malformed_200_is_assumed_spent_never_released(tmp_path: Path) -> None:
    clock = FakeClock()
    faults = [{"service": "openai", "kind": "malformed_body", "nth": [1, 2]}]
    with billing_emulator(faults=faults) as (server, billing):
        settings = settings_for(server, daily_budget_usd=budget_for(2.5))
        caller = caller_for(tmp_path, settings, clock, attempts=5)
        errors = await embed(settings, caller, clock, texts(1))
    assert len(errors) == 1 and isinstance(errors[0], CostLimitExceeded)
    assert billing.billed_requests == 2
    spent, assumed = assert_budget_held(caller, billing.billed_nusd, int(2.5 * TOKENS * NUSD_PER_TOKEN))
    assert spent == assumed == billing.billed_nusd
    assert caller.db.execute("SELECT status, COUNT(*) FROM reservations GROUP BY status").fetchall() == [
        ("assumed", 2)]


async def test_what_releases_and_what_is_assumed(tmp_path: Path) -> None:
    """Proven not processed (an error status, connection refused, refused before sending) releases;
    a connection lost after sending is assumed."""
    clock = FakeClock()
    faults = [{"service": "openai", "kind": "status", "status": 500, "nth": 1},
              {"service": "openai", "kind": "disconnect", "nth": 2}]
    with billing_emulator(faults=faults) as (server, _billing):
        settings = settings_for(server, daily_budget_usd=1.0)
        caller = caller_for(tmp_path, settings, clock, attempts=1)
        errors = [e for text in texts(2) for e in await embed(settings, caller, clock, [text])]
    assert [type(e) for e in errors] == [ServiceUnavailableError, ServiceUnavailableError]
    assert [e.maybe_billed for e in errors] == [False, True]
    rows = caller.db.execute("SELECT http_status, assumed, cost_nusd FROM usage ORDER BY id").fetchall()
    assert rows == [(500, 0, 0), (None, 1, 20_000)]

    # connection refused: a port nobody listens on
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = settings_for(None, daily_budget_usd=1.0, openai_base_url=f"http://127.0.0.1:{port}/v1")
    caller2 = caller_for(tmp_path / "b", refused, clock)
    (tmp_path / "b").mkdir(exist_ok=True)
    errors = await embed(refused, caller2, clock, texts(1))
    assert isinstance(errors[0], ServiceUnavailableError) and not errors[0].maybe_billed
    # refused before sending (an empty input is never sent): no reservation at all
    errors = await embed(refused, caller2, clock, ["   "])
    assert isinstance(errors[0], PermanentServiceError)
    assert caller2.db.execute("SELECT status FROM reservations").fetchall() == [("released",)]
    assert ledger_spent_nusd(caller2.db) == (0, 0)


def test_timeouts_before_sending_are_not_billed() -> None:
    """The client classifies a connect or pool timeout as not sent, any later timeout as maybe billed."""
    import asyncio

    from tvdb.http import ConnectTimeout, MockTransport, ReadTimeout, Request, Response

    async def classify(exc_type: type[Exception]) -> bool:
        def handler(request: Request) -> Response:
            raise exc_type("injected", request=request)

        settings = Settings.model_validate({"openai_api_key": KEY, "openai_base_url": "http://127.0.0.1:9/v1"})
        embedder = build_openai_embedder(settings, transport=MockTransport(handler))
        try:
            await embedder.embed(EmbeddingRequest(("hello",), "text-embedding-3-small", 1536, 1))
        except ServiceTimeoutError as exc:
            return exc.maybe_billed
        finally:
            await embedder.aclose()
        raise AssertionError("no timeout")

    assert asyncio.run(classify(ConnectTimeout)) is False
    assert asyncio.run(classify(ReadTimeout)) is True


def test_a_malformed_body_error_says_it_may_have_been_billed() -> None:
    exc = MalformedResponseError("x", service="openai", status=200, maybe_billed=True)
    assert exc.maybe_billed and not ServiceUnavailableError("x", service="openai").maybe_billed


@pytest.fixture(autouse=True)
def _tokens_are_exact() -> None:
    # the arithmetic above relies on it: each test text is TOKENS tokens
    assert count_tokens(texts(1)) == [TOKENS]


@pytest.mark.slow
def test_kill_9_mid_request_then_resume_after_the_ttl_never_exceeds_the_budget(tmp_path: Path) -> None:
    """A real `tvdb run` is killed (SIGKILL) while its embedding request is in flight; the provider
    answers and bills it. After the TTL a resume must still count that request: the budget (1.5
    requests) refuses the resume's request instead of paying for it twice."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    (tmp_path / "doc.txt").write_text(texts(1, "kill")[0])
    (tmp_path / "s.yaml").write_text(
        "name: killed\nmode: real\nservices: {parser: mock, embedder: real}\ndocuments: [doc.txt]\n"
        "chunking: {max_tokens: 8000, overlap_tokens: 0}\n")
    with billing_emulator(latency_s=1.5) as (server, billing):
        env = {**os.environ, "OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": KEY,
               "TVDB_DAILY_BUDGET_USD": str(budget_for(1.5)), "TVDB_RESERVATION_TTL_S": "3",
               "TVDB_EMBEDDING_TIMEOUT_S": "2.5", "TVDB_PARSE_TIMEOUT_S": "1",
               "TVDB_DATA_DIR": str(tmp_path / "data")}
        proc = subprocess.Popen([sys.executable, "-m", "tvdb", "run", str(tmp_path / "s.yaml"), "--json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.count() < 1:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        time.sleep(3.2)  # past the reservation TTL
        db = tmp_path / "data" / "tvdb.db"
        with sqlite3.connect(db) as conn:
            (run_id,) = conn.execute("SELECT run_id FROM runs").fetchone()
        resumed = subprocess.run([sys.executable, "-m", "tvdb", "resume", run_id, "--json"], cwd=tmp_path, env=env,
                                 capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 3, resumed.stderr
    assert billing.billed_requests == 1 and server.count() == 1  # the resume sent nothing
    ledger = open_db(db)
    spent, assumed = assert_budget_held(ServiceCaller(db=ledger, prices=PriceTable.load(), clock=FakeClock()),
                                        billing.billed_nusd, int(1.5 * TOKENS * NUSD_PER_TOKEN))
    assert spent == assumed == billing.billed_nusd
    assert ledger.execute("SELECT status, error_code FROM usage WHERE assumed = 1").fetchall() == [
        ("error", "owner_gone")]


@pytest.mark.parametrize(("error", "status", "cost"), [
    (ServiceTimeoutError("llamaparse: job poll timed out", service="llamaparse", maybe_billed=True),
     "assumed", 3 * 1_250_000),
    (ServiceUnavailableError("llamaparse HTTP 503", service="llamaparse", status=503), "released", 0),
])
async def test_the_rule_holds_for_every_service(tmp_path: Path, error: Exception, status: str, cost: int) -> None:
    """A LlamaParse upload (3 pages, fast tier) goes through the same guard: maybe billed → assumed."""
    from tvdb.domain import Implementation
    from tvdb.services.calls import CallSpec

    clock = FakeClock()
    settings = Settings(daily_budget_usd=1.0)
    caller = caller_for(tmp_path, settings, clock)

    async def send() -> int:
        raise error

    spec: CallSpec[int] = CallSpec(service="llamaparse", implementation=Implementation.REAL, model="fast",
                                   unit="pages", estimate_units=3, send=send, actual_units=lambda r: r)
    with pytest.raises(type(error)):
        await caller.call(CallScope("r", "s", "parse", ("j",)), spec)
    assert caller.db.execute("SELECT status FROM reservations").fetchall() == [(status,)]
    assert caller.db.execute("SELECT cost_nusd, assumed, units FROM usage").fetchall() == [
        (cost, int(bool(cost)), 3.0 if cost else 0.0)]
