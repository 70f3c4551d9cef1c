"""An account whose tokens-per-minute limit is below one request (tvdb.services.tokenlimit): the real
client against the emulator, its TPM window on the test's fake clock or its limit header rewritten.
Every vector arrives in a bounded number of requests, no request over the limit is sent once an
answer named it, an input over it alone fails with an error that names the limit and the fix, and
the ledger bills and reserves exactly what was sent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlite_utils

from tests.openai_support import KEY, emulator, metered_caller, settings_for, text_of_tokens, usage_rows
from tvdb import catalog
from tvdb.clock import FakeClock
from tvdb.config import Settings, resolve_settings
from tvdb.domain import RateLimits
from tvdb.errors import PermanentServiceError, RateLimitExceeded, RequestOverTokenLimit, TvdbError
from tvdb.http import AsyncBaseTransport, AsyncHTTPTransport, Request, Response
from tvdb.ledger.budget import BudgetSettings, LedgerBudget
from tvdb.ledger.guard import CallScope
from tvdb.recording.session import Tape
from tvdb.scenarios.loader import LoadedScenario, load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import RunHooks, start_run
from tvdb.services.calls import ServiceCaller
from tvdb.services.embedding import embed_batches
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.services.remote.status import error_for_status
from tvdb.services.tokenlimit import HEADER, SETTING, AccountTokenLimit, capped, split
from tvdb.tokens import count_tokens

SCOPE = CallScope("run-1", "tpm-test", "embed", ("job-1",))
SPEC = catalog.embedding_model("text-embedding-3-small")
DIMS = 8


@dataclass(frozen=True)
class Sent:
    tokens: int
    status: int
    limit_seen_before: int | None  # the lowest x-ratelimit-limit-tokens answered before this request


class Watching(AsyncBaseTransport):
    """The real transport, noting each embeddings request's tokens (`counts`: the test's own counts,
    else tiktoken's) and status, and the limit header the answers before it carried; `limit` replaces
    that header on every answer."""

    def __init__(self, counts: dict[str, int] | None = None, limit: str | None = None) -> None:
        self.inner = AsyncHTTPTransport()
        self.count: Callable[[str], int] = counts.__getitem__ if counts is not None else \
            (lambda text: count_tokens([text])[0])
        self.limit = limit
        self.sent: list[Sent] = []
        self.lowest: int | None = None

    async def handle_async_request(self, request: Request) -> Response:
        if not request.url.path.endswith("/embeddings"):  # a health probe
            return await self.inner.handle_async_request(request)
        tokens = sum(self.count(text) for text in json.loads(request.content)["input"])
        before = self.lowest
        response = await self.inner.handle_async_request(request)
        if self.limit is not None:
            response.headers["x-ratelimit-limit-tokens"] = self.limit
        header = response.headers.get("x-ratelimit-limit-tokens")
        if header is not None:
            self.lowest = min(int(header), self.lowest or int(header))
        self.sent.append(Sent(tokens, response.status_code, before))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def over_a_known_limit(self) -> list[Sent]:
        return [s for s in self.sent if s.limit_seen_before is not None and s.tokens > s.limit_seen_before]


def texts_of(tokens: int, n: int) -> list[str]:
    """`n` texts of exactly `tokens` cl100k tokens (the same text: vectors need no distinct inputs)."""
    return [text_of_tokens(tokens)] * n


def budgeted_caller(tmp_path: Path, clock: FakeClock) -> ServiceCaller:
    """The tests' metered caller with a ledger budget, so that every attempt takes a reservation."""
    plain = metered_caller(tmp_path, clock)
    budget = LedgerBudget(plain.db, BudgetSettings(daily_budget_usd=100.0), clock)
    return ServiceCaller(db=plain.db, prices=plain.prices, clock=clock, retry=plain.retry, budget=budget)


async def embed(settings: Settings, transport: Watching, caller: ServiceCaller, clock: FakeClock,
                texts: Sequence[str], **kwargs: Any) -> Any:
    embedder = build_openai_embedder(settings, transport=transport)
    try:
        return await embed_batches(texts, embedder=embedder, caller=caller, settings=settings, clock=clock,
                                   scope=SCOPE, **kwargs)
    finally:
        await embedder.aclose()


# --- the account limit below one request: 429 then split ------------------------------------------


@pytest.mark.parametrize("counted", [True, False], ids=["counts given", "counted while sending"])
async def test_a_request_over_the_account_limit_is_split_and_every_vector_arrives(
    tmp_path: Path, counted: bool,
) -> None:
    clock = FakeClock()
    caller = budgeted_caller(tmp_path, clock)
    texts = texts_of(5000, 58)  # 290,000 tokens: one request under the 300,000 cap, twice the account's TPM
    counts = count_tokens(texts)
    transport = Watching(dict(zip(texts, counts, strict=True)))
    with emulator(tpm=150_000, clock=clock.monotonic) as server:
        settings = settings_for(server, embedding={"dimensions": DIMS})
        vectors = await embed(settings, transport, caller, clock, texts, token_counts=counts if counted else None)
    assert np.array_equal(vectors, HashEmbedder().embed_texts(texts, DIMS))
    # the one refused request, then two halves: the second waits once for the window (a 429 that
    # names the minute's remaining tokens), not four times for a window it could never fit
    assert [(s.tokens, s.status) for s in transport.sent] == [
        (290_000, 429), (145_000, 200), (145_000, 429), (145_000, 200)]
    assert transport.over_a_known_limit() == []
    assert clock.sleeps == [pytest.approx(60.0)]
    rows = usage_rows(caller.db)
    assert sum(r["units"] for r in rows if r["status"] == "ok") == sum(counts)
    assert [r["units"] for r in rows if r["status"] == "error"] == [0, 0]  # refused: nothing billed
    assert not any(r["assumed"] for r in rows)
    reservations = list(caller.db.query("SELECT units, status FROM reservations ORDER BY created_at"))
    # one reservation per request sent, at its own tokens: none for more than was sent, none left open
    assert sorted(r["units"] for r in reservations) == sorted(s.tokens for s in transport.sent)
    assert {r["status"] for r in reservations} == {"settled", "released"}


async def test_the_retry_policy_no_longer_waits_out_a_request_the_window_can_never_hold(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = texts_of(1000, 10)  # 10,000 tokens in one request; the account takes 6,000 a minute
    counts = count_tokens(texts)
    transport = Watching(dict(zip(texts, counts, strict=True)))
    with emulator(tpm=6_000, clock=clock.monotonic) as server:
        settings = settings_for(server, embedding={"dimensions": DIMS})
        vectors = await embed(settings, transport, caller, clock, texts, token_counts=counts)
    assert np.isfinite(vectors).all()
    assert transport.sent[0] == Sent(10_000, 429, None)  # the only request over the limit: it taught it
    assert transport.over_a_known_limit() == []
    assert all(s.tokens <= 6_000 for s in transport.sent[1:])
    assert len(transport.sent) <= 1 + 2 * 2  # two parts, each at most one wait for the window
    rows = usage_rows(caller.db)
    assert (rows[0]["attempt"], rows[0]["http_status"], rows[0]["units"]) == (1, 429, 0)  # not retried as is
    assert sum(r["units"] for r in rows) == sum(counts)


# --- the limit learned from a 200's header: later requests are split before they are sent ------


async def test_a_limit_read_from_an_answer_splits_the_requests_planned_before_it(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = budgeted_caller(tmp_path, clock)
    texts = texts_of(12, 2 * 2048)  # two requests by the input cap, 24,576 tokens each
    counts = count_tokens(texts)
    transport = Watching(dict(zip(texts, counts, strict=True)), limit="20000")  # the emulator does not enforce it
    with emulator() as server:
        settings = settings_for(server, embedding={"dimensions": DIMS})
        vectors = await embed(settings, transport, caller, clock, texts, token_counts=counts)
    assert np.array_equal(vectors, HashEmbedder().embed_texts(texts, DIMS))
    # the probe went out before anything was known; the second request never went out as planned
    assert [(s.tokens, s.status) for s in transport.sent] == [(24_576, 200), (12_288, 200), (12_288, 200)]
    assert transport.over_a_known_limit() == []
    reservations = list(caller.db.query("SELECT units FROM reservations"))
    assert sorted(r["units"] for r in reservations) == sorted(s.tokens for s in transport.sent)
    assert sum(r["units"] for r in usage_rows(caller.db)) == sum(counts)


async def test_what_one_call_learned_plans_the_next_call_under_the_limit(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    first, second = texts_of(100, 300), texts_of(100, 400)  # 30,000 and 40,000 tokens
    counts = dict(zip(first + second, count_tokens(first + second), strict=True))
    transport = Watching(counts, limit="20000")
    limit = AccountTokenLimit()
    with emulator() as server:
        settings = settings_for(server, embedding={"dimensions": DIMS})
        await embed(settings, transport, caller, clock, first, token_limit=limit)
        before = len(transport.sent)
        await embed(settings, transport, caller, clock, second, token_limit=limit)
    assert limit.tokens == 20_000 and limit.source == HEADER
    # planned under the limit from the start: the fewest requests of at most 20,000 tokens
    assert [s.tokens for s in transport.sent[before:]] == [20_000, 20_000]


async def test_a_configured_limit_plans_every_request_under_it(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = texts_of(100, 500)  # 50,000 tokens
    counts = count_tokens(texts)
    transport = Watching(dict(zip(texts, counts, strict=True)))
    with emulator() as server:
        settings = settings_for(server, embedding={"dimensions": DIMS}, limits={"openai_tokens_per_minute": 20_000})
        vectors = await embed(settings, transport, caller, clock, texts)
    assert np.isfinite(vectors).all()
    sent = [s.tokens for s in transport.sent]
    assert len(sent) == 3 and max(sent) <= 20_000 and sum(sent) == 50_000  # ⌈50,000 / 20,000⌉ requests
    assert all(s.status == 200 for s in transport.sent)


# --- a run: the limit learned once holds for its later request groups -----------------------------


@pytest.fixture()
def small_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests of at most 8 inputs / 700 tokens: with one request per group, a few notes make several groups."""
    small = dataclasses.replace(SPEC, max_inputs_per_request=8, max_tokens_per_request=700)
    monkeypatch.setitem(catalog.EMBEDDING_MODELS, SPEC.name, small)


def note(n: int, lines: int = 12) -> str:
    return "\n".join(f"{i}. harbour tide gauge sensor reading {n}-{i} " * 4 for i in range(lines))


def notes(tmp_path: Path, texts: Sequence[str]) -> LoadedScenario:
    """A scenario of one note per text, in that order."""
    for n, text in enumerate(texts):
        (tmp_path / f"d{n:02}.md").write_text(text, encoding="utf-8")
    (tmp_path / "s.yaml").write_text("name: tpm\nmode: real\nservices: {parser: mock, embedder: real}\n"
                                     "documents: ['*.md']\nchunking: {max_tokens: 60, overlap_tokens: 0}\n",
                                     encoding="utf-8")
    return load_scenario(tmp_path / "s.yaml")


def run(tmp_path: Path, loaded: LoadedScenario, base_url: str, clock: FakeClock, *, tape: Tape | None = None,
        transport: Watching | None = None) -> tuple[RunResult, Settings]:
    settings = resolve_settings(
        cwd=tmp_path, scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source,
        environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": base_url,
                 "TVDB_STREAMING_LOOKAHEAD_REQUESTS": "1", "TVDB_EMBEDDING_CONCURRENCY": "1"})
    hooks = RunHooks(transports={"openai": transport}) if transport is not None else RunHooks()
    return asyncio.run(start_run(loaded, settings, clock=clock, hooks=hooks, tape=tape)), settings


@pytest.mark.usefixtures("small_requests")
def test_a_run_learns_the_limit_once_and_plans_its_later_groups_under_it(tmp_path: Path) -> None:
    loaded = notes(tmp_path, [note(n) for n in range(3)])
    clock = FakeClock()
    transport = Watching()
    with emulator(tpm=300, clock=clock.monotonic) as server:
        result, settings = run(tmp_path, loaded, server.openai_base_url, clock, transport=transport)
    assert [d.status for d in result.documents] == ["complete"] * 3
    over = [s for s in transport.sent if s.tokens > 300]
    assert len(over) == 1 and over[0] == transport.sent[0] and over[0].status == 429  # the first group's probe
    assert transport.over_a_known_limit() == []
    db = sqlite_utils.Database(settings.database_path)
    billed = db.execute("SELECT SUM(units) FROM usage WHERE stage = 'embed' AND status = 'ok'").fetchone()[0]
    assert billed == db.execute("SELECT SUM(token_count) FROM chunks").fetchone()[0]


@pytest.mark.usefixtures("small_requests")
def test_a_replay_makes_the_requests_the_recording_made(tmp_path: Path) -> None:
    # eight one-line notes first: the first request fits the limit, and its answer's header teaches
    # it; the longer notes' requests are then cut under it before they are sent. A replay must cut them
    # the same way from the recorded headers, or it asks the cassette for requests it does not hold.
    loaded = notes(tmp_path, [*(f"tide {n}" for n in range(8)), note(8), note(9)])
    cassette = tmp_path / "tpm.yaml"
    clock = FakeClock()
    with emulator(tpm=300, clock=clock.monotonic) as server:
        recorded, _ = run(tmp_path, loaded, server.openai_base_url, clock,
                          tape=Tape(cassette, "all", fresh=True, scenario="tpm"))
    assert [d.status for d in recorded.documents] == ["complete"] * 10
    replayed, _ = run(tmp_path, loaded, "http://127.0.0.1:9/v1", FakeClock(), tape=Tape(cassette, "none"))
    assert [d.status for d in replayed.documents] == ["complete"] * 10, [d.error_message for d in replayed.documents]
    assert replayed.tape is not None and recorded.tape is not None
    assert replayed.tape["replayed_calls"] == recorded.tape["recorded_calls"]


# --- an input over the limit on its own -------------------------------------------------------------


async def test_an_input_over_the_limit_alone_fails_with_the_limit_and_the_fix(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = [*texts_of(500, 4), text_of_tokens(6000), *texts_of(500, 4)]
    counts = count_tokens(texts)
    transport = Watching(dict(zip(texts, counts, strict=True)))
    errors: list[tuple[list[int], TvdbError]] = []
    with emulator(tpm=5_000, clock=clock.monotonic) as server:
        settings = settings_for(server, embedding={"dimensions": DIMS})
        vectors = await embed(settings, transport, caller, clock, texts, token_counts=counts,
                              on_error=lambda i, e: errors.append((list(i), e)))
    assert [i for i, _ in errors] == [[4]]
    error = errors[0][1]
    assert isinstance(error, RequestOverTokenLimit) and (error.tokens, error.limit) == (6000, 5000)
    assert str(error) == (
        "openai: input 4 has 6000 tokens, over the account's limit of 5000 tokens per minute "
        "(x-ratelimit-limit-tokens): the API refuses any request that carries it, however long one waits; "
        "not sent. Chunk smaller (chunking.max_tokens ≤ 5000) or ask OpenAI for a higher tokens-per-minute "
        "limit (https://platform.openai.com/account/rate-limits)")
    assert np.isnan(vectors[4]).all() and np.isfinite(np.delete(vectors, 4, axis=0)).all()
    # the whole request, refused; then the other eight inputs, which fit in one
    assert [(s.tokens, s.status) for s in transport.sent] == [(10_000, 429), (4000, 200)]
    assert transport.over_a_known_limit() == []
    assert clock.sleeps == []


async def test_without_on_error_the_clear_error_is_raised_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = [text_of_tokens(6000)]
    transport = Watching(dict(zip(texts, count_tokens(texts), strict=True)))
    with emulator(tpm=5_000, clock=clock.monotonic) as server, \
            pytest.raises(RequestOverTokenLimit, match="input 0 has 6000 tokens, over the account's limit of 5000"):
        await embed(settings_for(server, embedding={"dimensions": DIMS}), transport, caller, clock, texts)
    assert len(transport.sent) == 1 and clock.sleeps == []  # one 429, no retry loop


async def test_a_configured_limit_refuses_an_input_over_it_unsent_and_names_the_setting(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = ["a short one", text_of_tokens(3000)]
    transport = Watching(dict(zip(texts, count_tokens(texts), strict=True)))
    errors: list[tuple[list[int], TvdbError]] = []
    with emulator() as server:
        settings = settings_for(server, embedding={"dimensions": DIMS}, limits={"openai_tokens_per_minute": 2_000})
        await embed(settings, transport, caller, clock, texts, on_error=lambda i, e: errors.append((list(i), e)))
    assert [i for i, _ in errors] == [[1]]
    assert f"({SETTING}): the API refuses" in str(errors[0][1]) and f"or raise {SETTING}" in str(errors[0][1])
    assert [s.tokens for s in transport.sent] == [3]


# --- the pieces -----------------------------------------------------------------------------------


def test_the_limit_is_the_lowest_any_answer_named() -> None:
    limit = AccountTokenLimit()
    assert limit.tokens is None and not limit.over(10**9)
    limit.learn(None)
    limit.learn(RateLimits(remaining_tokens=5))  # no limit header: nothing learned
    limit.learn(RateLimits(limit_tokens=0, remaining_tokens=0))  # a limit of 0 would refuse everything
    assert limit.tokens is None
    limit.learn(RateLimits(limit_tokens=150_000))
    limit.learn(RateLimits(limit_tokens=1_000_000))  # never raised again
    assert (limit.tokens, limit.source) == (150_000, HEADER)
    assert limit.over(150_001) and not limit.over(150_000)
    configured = AccountTokenLimit(40_000)
    configured.learn(RateLimits(limit_tokens=150_000))
    assert (configured.tokens, configured.source) == (40_000, SETTING)


def test_a_request_is_split_into_parts_under_the_limit_and_the_inputs_no_part_can_carry() -> None:
    counts = [400, 9000, 300, 300, 7000, 200]
    parts, alone = split([0, 1, 2, 3, 4, 5], counts, SPEC, 1000)
    assert alone == [1, 4]
    assert sorted(i for part in parts for i in part) == [0, 2, 3, 5]
    assert all(sum(counts[i] for i in part) <= 1000 for part in parts) and len(parts) == 2
    assert capped(SPEC, None) is SPEC and capped(SPEC, 500_000) is SPEC
    assert (capped(SPEC, 5000).max_tokens_per_request, capped(SPEC, 5000).max_input_tokens) == (5000, 5000)


def test_a_429_carries_its_rate_limit_headers() -> None:
    limits = RateLimits(limit_tokens=150_000, remaining_tokens=0)
    exc = error_for_status("openai", 429, message="Request too large", code="rate_limit_exceeded", type="tokens",
                           rate_limits=limits)
    assert isinstance(exc, RateLimitExceeded) and exc.rate_limits == limits
    refused = error_for_status("openai", 400, message="bad", rate_limits=limits)
    assert isinstance(refused, PermanentServiceError) and not isinstance(refused, RequestOverTokenLimit)


async def test_the_real_client_reads_the_headers_of_a_429() -> None:
    from tvdb.domain import EmbeddingRequest

    with emulator(tpm=5) as server:
        embedder = build_openai_embedder(settings_for(server, key=KEY))
        try:
            with pytest.raises(RateLimitExceeded) as caught:
                await embedder.embed(EmbeddingRequest((text_of_tokens(6),), "text-embedding-3-small", 1536, 6, (6,)))
        finally:
            await embedder.aclose()
    assert caught.value.rate_limits is not None and caught.value.rate_limits.limit_tokens == 5
