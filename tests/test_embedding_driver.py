"""The batched embedding driver with the real client against the emulator over loopback HTTP: the fewest
requests, retries through the one policy, one ledger row per attempt, vector validation, pacing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.openai_support import emulator, metered_caller, settings_for, text_of_tokens, usage_rows
from tvdb.clock import FakeClock
from tvdb.config import Settings
from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation
from tvdb.errors import (
    PermanentServiceError,
    QuotaExhausted,
    RateLimitExceeded,
    ServiceTimeoutError,
    TvdbError,
    VectorValidationError,
)
from tvdb.faults import FaultPlan, FaultyEmbedder
from tvdb.ledger.guard import CallScope
from tvdb.services.calls import Completed, ServiceCaller
from tvdb.services.embedding import RatePacer, embed_batches
from tvdb.services.local.embedder import HashEmbedder
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.tokens import count_tokens

SCOPE = CallScope("run-1", "driver-test", "embed", ("job-1",))


def texts_of(n: int) -> list[str]:
    return [f"chunk {i} about pipelines, vectors and budgets" for i in range(n)]


async def run(
    settings: Settings, caller: ServiceCaller, clock: FakeClock, texts: Sequence[str], *,
    faults: list[dict[str, Any]] | None = None, errors: list[tuple[list[int], TvdbError]] | None = None,
    **kwargs: Any,
) -> Any:
    embedder = build_openai_embedder(settings, faults=FaultPlan.of(faults) if faults else None)
    on_error = (lambda idx, exc: errors.append((list(idx), exc))) if errors is not None else None
    try:
        return await embed_batches(texts, embedder=embedder, caller=caller, settings=settings, clock=clock,
                                   scope=SCOPE, on_error=on_error, **kwargs)
    finally:
        await embedder.aclose()


async def test_fewest_requests_vectors_in_order_and_one_priced_row_per_request(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = texts_of(2049)  # one over the 2,048-input cap: two requests
    stored: list[list[int]] = []

    def on_batch(indices: Sequence[int], done: Completed[EmbeddingResult]) -> None:
        stored.append(list(indices))
        done.commit(caller.db, caller.budget)

    with emulator() as server:
        vectors = await run(settings_for(server), caller, clock, texts, on_batch=on_batch)
        assert server.count() == 2
    assert vectors.dtype == np.float32 and vectors.shape == (2049, 1536)
    assert np.array_equal(vectors, HashEmbedder().embed_texts(texts, 1536))
    assert sorted(i for batch in stored for i in batch) == list(range(2049))
    rows = usage_rows(caller.db)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    assert sum(r["units"] for r in rows) == sum(count_tokens(texts))
    assert all(r["implementation"] == "real" and r["cost_nusd"] == r["would_cost_nusd"] > 0 for r in rows)
    assert all(r["request_id"].startswith("req_") and r["run_id"] == "run-1" for r in rows)


async def test_token_bound_batching_reaches_the_lower_bound(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = [text_of_tokens(8000) + f" {i}" for i in range(40)]  # ~320k tokens: 2 requests, not 40
    counts = count_tokens(texts)
    with emulator() as server:
        vectors = await run(settings_for(server, embedding={"dimensions": 8}), caller, clock, texts,
                            token_counts=counts)
        assert server.count() == 2
    assert vectors.shape == (40, 8) and np.isfinite(vectors).all()


async def test_429_with_retry_after_is_retried_then_succeeds(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    faults = [{"service": "openai", "kind": "status", "status": 429, "retry_after": 1, "nth": [1, 2]}]
    with emulator(faults=faults) as server:
        vectors = await run(settings_for(server), caller, clock, ["hello world"])
        assert server.count() == 3
    assert clock.sleeps == [1.0, 1.0]
    rows = usage_rows(caller.db)
    assert [(r["attempt"], r["status"], r["http_status"], r["error_code"]) for r in rows] == [
        (1, "error", 429, "rate_limit_exceeded"), (2, "error", 429, "rate_limit_exceeded"), (3, "ok", 200, None)]
    assert [r["cost_nusd"] for r in rows] == [0, 0, 40]  # 2 tokens at $0.02 per 1M: cost only for the success
    assert vectors.shape == (1, 1536)


async def test_rate_limit_retried_up_to_the_configured_maximum(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock, max_attempts=3)
    errors: list[tuple[list[int], TvdbError]] = []
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 429, "retry_after": 1}]) as server:
        vectors = await run(settings_for(server), caller, clock, ["x"], errors=errors)
        assert server.count() == 3
    assert [type(e) for _, e in errors] == [RateLimitExceeded]
    assert [r["attempt"] for r in usage_rows(caller.db)] == [1, 2, 3]
    assert np.isnan(vectors).all()


async def test_c07_quota_exhausted_makes_exactly_one_request_and_stops(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    errors: list[tuple[list[int], TvdbError]] = []
    faults = [{"service": "openai", "kind": "status", "status": 429, "type": "insufficient_quota"}]
    with emulator(faults=faults) as server:
        await run(settings_for(server, embedding={"concurrency": 8}), caller, clock, texts_of(5000),
                  errors=errors)
        assert server.count() == 1
    assert clock.sleeps == []
    assert {type(e) for _, e in errors} == {QuotaExhausted}
    assert sorted(i for idx, _ in errors for i in idx) == list(range(5000))  # every batch failed, one sent
    assert "You exceeded your current quota" in str(errors[0][1])
    rows = usage_rows(caller.db)
    assert [(r["status"], r["http_status"], r["error_code"], r["cost_nusd"]) for r in rows] == [
        ("error", 429, "insufficient_quota", 0)]


async def test_c07_without_on_error_the_quota_error_is_raised(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    faults = [{"service": "openai", "kind": "status", "status": 429, "type": "insufficient_quota"}]
    with emulator(faults=faults) as server:
        with pytest.raises(QuotaExhausted):
            await run(settings_for(server), caller, clock, texts_of(3000))
        assert server.count() == 1


async def test_500_then_success(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    with emulator(faults=[{"service": "openai", "kind": "status", "status": 500, "nth": 1}]) as server:
        vectors = await run(settings_for(server), caller, clock, ["a", "b"])
        assert server.count() == 2
    assert np.isfinite(vectors).all()
    assert [(r["status"], r["http_status"]) for r in usage_rows(caller.db)] == [("error", 500), ("ok", 200)]
    assert 0.375 <= clock.sleeps[0] <= 0.5  # backoff without retry-after


async def test_timeout_malformed_and_disconnect_are_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    faults = [{"service": "openai", "kind": "timeout", "latency_s": 2, "nth": 1},
              {"service": "openai", "kind": "malformed_body", "nth": 2},
              {"service": "openai", "kind": "disconnect", "nth": 3}]
    with emulator(faults=faults) as server:
        vectors = await run(settings_for(server, embedding={"timeout_s": 0.3}), caller, clock, ["a"])
        assert server.count() == 4
    assert np.isfinite(vectors).all()
    rows = usage_rows(caller.db)
    assert [r["error_code"] for r in rows] == [
        "ServiceTimeoutError", "MalformedResponseError", "ServiceUnavailableError", None]


async def test_timeout_gives_up_after_max_attempts(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock, max_attempts=2)
    with emulator(faults=[{"service": "openai", "kind": "timeout", "latency_s": 2}]) as server:
        with pytest.raises(ServiceTimeoutError):
            await run(settings_for(server, embedding={"timeout_s": 0.2}), caller, clock, ["a"])
        assert server.count() == 2


@pytest.mark.parametrize(("vector", "message"), [("wrong_dimension", "dimension 1535, expected 1536"),
                                                  ("nan", "non-finite value")])
async def test_bad_vectors_fail_the_batch_but_the_paid_request_is_recorded(
    tmp_path: Path, vector: str, message: str,
) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    errors: list[tuple[list[int], TvdbError]] = []
    with emulator(faults=[{"service": "openai", "kind": "bad_vector", "vector": vector}]) as server:
        vectors = await run(settings_for(server), caller, clock, ["a", "b"], errors=errors)
        assert server.count() == 1  # not retried: the service answered, and was paid
    assert [(idx, type(e)) for idx, e in errors] == [([0, 1], VectorValidationError)]
    assert message in str(errors[0][1])
    assert np.isnan(vectors).all()
    rows = usage_rows(caller.db)
    assert [(r["status"], r["cost_nusd"] > 0) for r in rows] == [("ok", True)]


async def test_inputs_the_api_would_refuse_are_never_sent(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    errors: list[tuple[list[int], TvdbError]] = []
    texts = ["fine", "  ", text_of_tokens(9000), "also fine"]
    with emulator() as server:
        vectors = await run(settings_for(server), caller, clock, texts, errors=errors)
        assert server.count() == 1
        assert server.requests[-1].body_bytes < 1000
    assert [(idx, type(e)) for idx, e in errors] == [([1], PermanentServiceError), ([2], PermanentServiceError)]
    assert "9000 tokens, over the 8192 cap" in str(errors[1][1])
    assert np.isfinite(vectors[[0, 3]]).all() and np.isnan(vectors[[1, 2]]).all()


async def test_pacing_keeps_requests_inside_rpm_and_tpm(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    texts = texts_of(3 * 2048)  # three requests
    settings = settings_for(None, limits={"openai_requests_per_minute": 2})
    with emulator(rpm=2, clock=clock.monotonic) as server:
        settings = settings.model_copy(update={"openai_base_url": server.openai_base_url})
        vectors = await run(settings, caller, clock, texts)
        assert server.count() == 3  # never refused: the client waited for the window
    assert np.isfinite(vectors).all()
    assert len(clock.sleeps) == 1 and clock.sleeps[0] == pytest.approx(60.0)


async def test_pacer_waits_for_tokens_to_leave_the_window() -> None:
    clock = FakeClock()
    pacer = RatePacer(None, 1000, clock)
    await pacer.acquire(600)
    clock.advance(10)
    await pacer.acquire(300)
    await pacer.acquire(300)  # 1,200 > 1,000: waits until the first 600 leave (t = 60)
    assert clock.sleeps == [pytest.approx(50.0)]


async def test_consistency_check_passes_for_a_deterministic_service(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    settings = {"embedding": {"consistency_check": {"sample": 3, "min_cosine": 0.999}}}
    with emulator() as server:
        await run(settings_for(server, **settings), caller, clock, texts_of(10))
        assert server.count() == 2  # the batch, then one request re-embedding the sample
    assert len(usage_rows(caller.db)) == 2


class _Drifting:
    """An embedder whose answers change after the first call (what the consistency check catches)."""

    service = "openai"
    implementation = Implementation.MOCK
    identity = "test fake"

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        self.calls += 1
        texts = list(request.texts) if self.calls == 1 else [t + " drift words" for t in request.texts]
        vectors = HashEmbedder().embed_texts(texts, request.dimensions)
        return EmbeddingResult(vectors, request.token_count, request.model)


async def test_consistency_check_fails_for_a_drifting_service(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    settings = Settings.model_validate({"embedding": {"consistency_check": {"sample": 2, "min_cosine": 0.99}}})
    with pytest.raises(VectorValidationError, match="consistency check"):
        await embed_batches(texts_of(6), embedder=_Drifting(), caller=caller, settings=settings, clock=clock)


async def test_mock_embedder_with_faults_goes_through_the_same_driver(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    embedder = FaultyEmbedder(HashEmbedder(), FaultPlan.of([
        {"service": "openai", "kind": "status", "status": 503, "nth": 1}]), sleep=clock.sleep)
    vectors = await embed_batches(texts_of(4), embedder=embedder, caller=caller, settings=Settings(), clock=clock)
    assert np.array_equal(vectors, HashEmbedder().embed_texts(texts_of(4), 1536))
    rows = usage_rows(caller.db)
    assert [(r["implementation"], r["status"], r["cost_nusd"]) for r in rows] == [
        ("mock", "error", 0), ("mock", "ok", 0)]
    assert rows[1]["would_cost_nusd"] > 0


async def test_without_on_error_the_first_failure_stops_the_rest(tmp_path: Path) -> None:
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    faults = [{"service": "openai", "kind": "status", "status": 400, "nth": 2}]
    with emulator(faults=faults) as server:
        with pytest.raises(PermanentServiceError):
            await run(settings_for(server, embedding={"concurrency": 1}), caller, clock, texts_of(3 * 2048))
        assert server.count() == 2  # the probe, the failing request; the third is never sent


async def test_an_unexpected_exception_cancels_the_requests_in_flight(tmp_path: Path) -> None:
    import asyncio

    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    finished: list[int] = []

    class _Broken:
        service = "openai"
        implementation = Implementation.MOCK
        identity = "test fake"
        calls = 0

        async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("a bug")
            if self.calls > 1:
                await asyncio.sleep(5)  # cancelled long before this ends
            finished.append(self.calls)
            vectors = HashEmbedder().embed_texts(list(request.texts), request.dimensions)
            return EmbeddingResult(vectors, request.token_count, request.model)

    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(embed_batches(texts_of(4 * 2048), embedder=_Broken(), caller=caller,
                                             settings=Settings(), clock=clock), timeout=3)
    assert finished == [1]


def test_a_batch_of_consecutive_rows_is_copied_by_slice_and_any_other_by_index() -> None:
    from tvdb.services.embedding import _rows

    assert _rows([4, 5, 6]) == slice(4, 7)
    assert _rows([3, 5, 4, 6]) == [3, 5, 4, 6]  # first and last 3 apart, but not in order
    assert _rows([1, 2, 4]) == [1, 2, 4]  # an input refused in between
    assert _rows([]) == []
