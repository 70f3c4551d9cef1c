"""Requests in flight chosen from the rate limits (`embedding.concurrency: auto`, tvdb.services.inflight):
the `x-ratelimit-*` headers parsed as the API sends them, the limit they give, and the real client
against the emulator sending no more at once than the headers allow."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import emulator, metered_caller, settings_for, usage_rows
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.domain import EmbeddingRequest, Implementation, Mode, RateLimits
from tvdb.errors import ConfigError
from tvdb.http import AsyncBaseTransport, AsyncHTTPTransport, Request, Response
from tvdb.ledger.guard import CallScope
from tvdb.services.breaker import CircuitBreaker
from tvdb.services.embedding import embed_batches
from tvdb.services.inflight import AUTO_MAX, AUTO_START, InFlightLimit, limit_from
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.services.remote.status import parse_go_duration, parse_rate_limits
from tvdb.services.router import Lane, fixed_router

CONTRACT_HEADERS = {  # contracts.md §1.6, a captured embeddings response
    "x-ratelimit-limit-requests": "200", "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "197", "x-ratelimit-remaining-tokens": "149993",
    "x-ratelimit-reset-requests": "19m5.228s", "x-ratelimit-reset-tokens": "2ms",
}


@pytest.mark.parametrize(("text", "seconds"), [
    ("2ms", 0.002), ("180ms", 0.18), ("1.5s", 1.5), ("6m0s", 360.0), ("11m32.334s", 692.334),
    ("19m5.228s", 1145.228), ("1h2m3s", 3723.0), ("0s", 0.0), ("0", 0.0), ("250us", 0.00025),
])
def test_go_durations_as_the_headers_send_them(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5", "-2s", "2 s", "1.5", "3x", "s"])
def test_what_is_not_a_go_duration_is_none(text: str) -> None:
    assert parse_go_duration(text) is None


def test_the_contract_headers_parse_and_absent_ones_are_none() -> None:
    assert parse_rate_limits(CONTRACT_HEADERS) == RateLimits(200, 150_000, 197, 149_993,
                                                             pytest.approx(1145.228), 0.002)
    assert parse_rate_limits({"x-request-id": "req_1"}) is None  # a proxy without them
    assert parse_rate_limits({"x-ratelimit-remaining-requests": "lots"}) is None
    assert parse_rate_limits({"x-ratelimit-remaining-tokens": "5000"}) == RateLimits(remaining_tokens=5000)


@pytest.mark.parametrize(("limits", "tokens", "expected"), [
    (RateLimits(remaining_requests=197, remaining_tokens=149_993), 10_000, 14),  # tokens bind: 14 requests left
    (RateLimits(remaining_requests=2, remaining_tokens=10_000_000), 10_000, 2),  # requests bind
    (RateLimits(remaining_requests=5_000, remaining_tokens=900_000_000), 300_000, AUTO_MAX),  # the cap
    (RateLimits(remaining_requests=0, remaining_tokens=0), 300_000, 1),  # never 0: a 429 then says when
    (RateLimits(remaining_tokens=900_000), 300_000, 3),
    (RateLimits(limit_requests=10), 1_000, None),  # no remaining count: no change
])
def test_the_limit_the_headers_allow(limits: RateLimits, tokens: int, expected: int | None) -> None:
    assert limit_from(limits, tokens) == expected


async def test_the_limit_admits_no_more_than_it_allows_and_follows_observations() -> None:
    gate = InFlightLimit(None)
    assert gate.limit == AUTO_START
    await gate.observe(RateLimits(remaining_requests=2), 100)
    assert gate.limit == 2
    await gate.observe(None, 100)  # an answer without headers changes nothing
    assert gate.limit == 2

    async def hold() -> None:
        async with gate:
            await asyncio.sleep(0.01)

    await asyncio.gather(*(hold() for _ in range(6)))
    assert gate.peak == 2 and gate.active == 0
    fixed = InFlightLimit(3)
    await fixed.observe(RateLimits(remaining_requests=1), 100)
    assert fixed.limit == 3


class Rewriting(AsyncBaseTransport):
    """The real transport with each answer's x-ratelimit-remaining-requests replaced, counting the
    requests the client has out at once."""

    def __init__(self, remaining: str) -> None:
        self.inner = AsyncHTTPTransport()
        self.remaining = remaining
        self.active = self.peak = self.sent = 0

    async def handle_async_request(self, request: Request) -> Response:
        self.active += 1
        self.sent += 1
        self.peak = max(self.peak, self.active)
        try:
            response = await self.inner.handle_async_request(request)
        finally:
            self.active -= 1
        response.headers["x-ratelimit-remaining-requests"] = self.remaining
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def small_texts() -> list[str]:
    return [f"t{i}" for i in range(9 * 2048)]  # nine requests by the input limit: one probe, then eight


async def embed_through(server: Any, transport: Rewriting, tmp_path: Path, **embedding: Any) -> None:
    clock = FakeClock()
    settings = settings_for(server, embedding={"dimensions": 8, **embedding})
    embedder = build_openai_embedder(settings, transport=transport)
    try:
        await embed_batches(small_texts(), embedder=embedder, caller=metered_caller(tmp_path, clock),
                            settings=settings, clock=clock, scope=CallScope("run-1", "t", "embed", ()))
    finally:
        await embedder.aclose()


@pytest.mark.parametrize(("remaining", "embedding", "peak"), [
    ("2", {}, 2),  # auto: the headers say two more, so two at a time
    ("50", {}, 8),  # auto: room for more than the 4 a fixed default had: all eight after the probe
    ("50", {"concurrency": 4}, 4),  # fixed: the headers do not move it
    ("1", {"concurrency": 3}, 3),
])
async def test_the_real_client_sends_as_many_at_once_as_the_headers_allow(
    tmp_path: Path, remaining: str, embedding: dict[str, Any], peak: int,
) -> None:
    # 0.5 s per answer: on a busy machine every request the limit allows is sent before the first returns
    with emulator(latency_s=0.5) as server:
        transport = Rewriting(remaining)
        await embed_through(server, transport, tmp_path, **embedding)
    assert transport.sent == 9
    assert transport.peak == peak


async def test_the_emulators_headers_reach_the_result_a_replay_too() -> None:
    with emulator(rpm=500, tpm=2_000_000) as server:
        request = EmbeddingRequest(("hello world",), "text-embedding-3-small", 1536, 2, (2,))
        real = build_openai_embedder(settings_for(server))
        replay = build_openai_embedder(settings_for(server), implementation=Implementation.REPLAY)
        try:
            answer = await real.embed(request)
            replayed = await replay.embed(request)
        finally:
            await real.aclose()
            await replay.aclose()
    assert answer.rate_limits is not None
    assert (answer.rate_limits.limit_requests, answer.rate_limits.remaining_requests) == (500, 499)
    assert (answer.rate_limits.limit_tokens, answer.rate_limits.remaining_tokens) == (2_000_000, 1_999_998)
    # kept: the token limit a cassette names decides how a replay cuts its requests (tvdb.services.tokenlimit)
    assert replayed.rate_limits is not None and replayed.rate_limits.limit_tokens == 2_000_000


async def test_a_replay_does_not_move_the_limit(tmp_path: Path) -> None:
    # a cassette's remaining counts are not today's: the gate stays where it started
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    with emulator(latency_s=0.5) as server:
        transport = Rewriting("1")
        settings = settings_for(server, embedding={"dimensions": 8})
        replay = build_openai_embedder(settings, transport=transport, implementation=Implementation.REPLAY)
        plain = fixed_router(caller)
        breaker = CircuitBreaker("openai", failure_threshold=5, cooldown_s=30.0, clock=clock)
        router = replace(plain, embedder=Lane("embedder", Mode.REAL, "replay", HashEmbedder(), replay, breaker))
        try:
            await embed_batches(small_texts(), router=router, settings=settings, clock=clock,
                                scope=CallScope("run-1", "t", "embed", ()))
        finally:
            await replay.aclose()
    assert transport.sent == 9
    assert transport.peak == AUTO_START
    assert {r["implementation"] for r in usage_rows(caller.db)} == {"replay"}


@pytest.mark.parametrize("value", [0, 65, "fast", True, 2.5])
def test_a_bad_concurrency_names_the_file_line_and_both_forms(tmp_path: Path, value: object) -> None:
    (tmp_path / "tvdb.yaml").write_text(f"mode: mock\nembedding:\n  concurrency: {value}\n")
    with pytest.raises(ConfigError) as caught:
        resolve_settings(cwd=tmp_path, environ={})
    message = str(caught.value)
    assert "tvdb.yaml:3" in message and "embedding.concurrency" in message
    assert "must be auto (follow the API's rate-limit headers) or a whole number of requests from 1 to 64" in message


def test_auto_is_the_default_and_a_number_from_the_environment_works(tmp_path: Path) -> None:
    assert resolve_settings(cwd=tmp_path, environ={}).embedding.concurrency == "auto"
    assert resolve_settings(cwd=tmp_path, environ={"TVDB_EMBEDDING_CONCURRENCY": "8"}).embedding.concurrency == 8


def test_a_header_that_only_looks_like_a_count_is_not_sent() -> None:
    # headers arrive as latin-1: byte 0xB2 is "²", which str.isdigit() calls a digit and int() refuses
    assert parse_rate_limits({"x-ratelimit-remaining-requests": "²"}) is None
    assert parse_rate_limits({"x-ratelimit-remaining-requests": "²", "x-ratelimit-remaining-tokens": "90"}) == \
        RateLimits(remaining_tokens=90)


@pytest.mark.parametrize(("value", "expected"), [("AUTO", "auto"), (" auto ", "auto"), (" 8 ", 8), ("08", 8)])
def test_auto_and_numbers_are_read_forgivingly(tmp_path: Path, value: str, expected: object) -> None:
    env = {"TVDB_EMBEDDING_CONCURRENCY": value}
    assert resolve_settings(cwd=tmp_path, environ=env).embedding.concurrency == expected


@pytest.mark.parametrize("value", ["²", "٨"])
def test_digits_that_are_not_ascii_are_refused_with_the_message(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="must be auto .* or a whole number of requests from 1 to 64"):
        resolve_settings(cwd=tmp_path, environ={"TVDB_EMBEDDING_CONCURRENCY": value})
