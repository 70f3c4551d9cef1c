"""Token counting overlapped with sending (tvdb.services.counting): requests cut as counts arrive,
the same plan as with all counts known for small jobs, the first request sent while counting goes on,
and a whole embedding run identical whether tvdb counts or is given the counts."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tests.openai_support import emulator, metered_caller, settings_for, usage_rows
from tvdb import catalog
from tvdb.clock import FakeClock
from tvdb.errors import QuotaExhausted, TvdbError
from tvdb.ledger.guard import CallScope
from tvdb.services.batching import lower_bound, plan_batches
from tvdb.services.counting import StreamPlanner, counted_requests
from tvdb.services.embedding import embed_batches
from tvdb.services.remote.openai_embedder import build_openai_embedder
from tvdb.tokens import count_tokens

SPEC = catalog.embedding_model("text-embedding-3-small")
CAP = SPEC.max_tokens_per_request  # 300,000


def streamed(counts: list[int]) -> list[list[int]]:
    planner = StreamPlanner(SPEC)
    requests = [r for i, c in enumerate(counts) for r in planner.add(i, c)]
    return requests + planner.finish()


@given(st.lists(st.integers(1, 8192), max_size=60))
def test_a_job_within_the_held_window_is_planned_as_with_every_count_known(counts: list[int]) -> None:
    # at most 60 × 8,192 = 491,520 tokens: under the two requests held back
    assert streamed(counts) == plan_batches(counts, SPEC)


@given(st.lists(st.integers(1, 8192), min_size=1, max_size=400))
def test_streamed_requests_cover_every_input_once_within_the_limits(counts: list[int]) -> None:
    requests = streamed(counts)
    assert sorted(i for r in requests for i in r) == list(range(len(counts)))
    for r in requests:
        assert r == sorted(r) and len(r) <= SPEC.max_inputs_per_request
        assert sum(counts[i] for i in r) <= CAP
    # a request cut early is full: the next input would not have fitted
    early = requests[:-len(plan_batches(counts[requests[-1][0]:], SPEC))] if requests else []
    for r in early:
        following = r[-1] + 1
        assert sum(counts[i] for i in r) + counts[following] > CAP


def test_equal_chunks_reach_the_lower_bound_and_long_inputs_lose_nothing() -> None:
    chunks = [200] * 20_000  # 4.0M tokens: 14 requests at least
    assert len(streamed(chunks)) == lower_bound(chunks, SPEC) == 14
    # 8,000-token inputs: 37 fit in a request, whoever plans them
    long = [8_000] * 5_000
    assert len(streamed(long)) == len(plan_batches(long, SPEC)) == 136
    # 2,048 inputs a request: the input limit cuts too
    tiny = [1] * 10_000
    assert [len(r) for r in streamed(tiny)] == [2048, 2048, 2048, 1928, 1928]


async def test_the_first_request_is_cut_while_later_slices_are_still_being_counted() -> None:
    texts = ["x"] * 3_000
    counts = [0] * len(texts)
    first_out = threading.Event()
    waited: list[bool] = []

    index = iter(range(len(texts)))
    lock = threading.Lock()

    def counting(text: str) -> int:  # runs in the worker thread, texts in order
        with lock:
            i = next(index)
        if i >= 1_500:  # these wait until the first request is out: without overlap they would time out
            waited.append(first_out.wait(timeout=10))
        return 1_000  # 300 inputs fill a request; 600 are held back

    requests = counted_requests(texts, counts, SPEC, refuse=lambda i, n: False, count=counting, slice_size=100,
                                threads=1)
    first = await anext(requests)
    assert first == list(range(300))
    assert counts[-1] == 0  # the last slice is not counted yet
    first_out.set()
    rest = [r async for r in requests]
    assert waited and all(waited)
    assert counts == [1_000] * 3_000
    assert sorted(i for r in [first, *rest] for i in r) == list(range(3_000))
    assert len(rest) == 9


async def test_refused_inputs_are_left_out_and_closing_early_stops_the_threads() -> None:
    texts = ["a b c", "", "d e", "f"] * 500
    counts = [0] * len(texts)
    refused: list[int] = []

    def refuse(i: int, n: int) -> bool:
        if texts[i]:
            return False
        refused.append(i)
        return True

    requests = [r async for r in counted_requests(texts, counts, SPEC, refuse=refuse, slice_size=64)]
    assert counts == count_tokens(texts)
    assert refused == list(range(1, 2000, 4))
    assert sorted(i for r in requests for i in r) == [i for i in range(2000) if texts[i]]
    gen = counted_requests(["y"] * 100_000, [0] * 100_000, SPEC, refuse=lambda i, n: False, count=lambda t: 1,
                           slice_size=10)
    await gen.aclose()  # before a slice is awaited: nothing raises, the pool is shut down


def long_texts(n: int) -> list[str]:
    # ~300 tokens each, all different: 3,500 of them are ~1.06M tokens, four requests, two cut as counted
    return [f"document {i}: " + " ".join(f"vector{j % 97} budget ledger" for j in range(75)) for i in range(n)]


async def test_counting_itself_gives_the_run_that_given_counts_give(tmp_path: Path) -> None:
    texts = long_texts(3_500)
    counts = count_tokens(texts)
    assert sum(counts) > 2 * CAP
    results = {}
    with emulator() as server:
        for given_counts in (True, False):
            clock = FakeClock()
            caller = metered_caller(tmp_path / str(given_counts), clock)
            embedder = build_openai_embedder(settings_for(server))
            before = server.count()
            try:
                vectors = await embed_batches(texts, token_counts=counts if given_counts else None, embedder=embedder,
                                              caller=caller, settings=settings_for(server), clock=clock,
                                              scope=CallScope("run-1", "t", "embed", ()))
            finally:
                await embedder.aclose()
            rows = usage_rows(caller.db)
            results[given_counts] = (vectors, server.count() - before, sorted(r["units"] for r in rows))
    (v_given, n_given, units_given), (v_self, n_self, units_self) = results[True], results[False]
    assert np.array_equal(v_given, v_self)
    assert n_given == n_self == lower_bound(counts, SPEC) == 4
    assert sum(units_given) == sum(units_self) == sum(counts)


async def test_a_quota_error_on_the_first_streamed_request_sends_nothing_more(tmp_path: Path) -> None:
    texts = long_texts(3_500)
    clock = FakeClock()
    caller = metered_caller(tmp_path, clock)
    failed: list[tuple[list[int], TvdbError]] = []
    faults = [{"service": "openai", "kind": "status", "status": 429, "type": "insufficient_quota"}]
    with emulator(faults=faults) as server:
        settings = settings_for(server)
        embedder = build_openai_embedder(settings)
        try:
            await embed_batches(texts, embedder=embedder, caller=caller, settings=settings, clock=clock,
                                scope=CallScope("run-1", "t", "embed", ()),
                                on_error=lambda idx, exc: failed.append((list(idx), exc)))
        finally:
            await embedder.aclose()
        assert server.count() == 1
    assert sorted(i for idx, _ in failed for i in idx) == list(range(3_500))
    assert all(isinstance(exc, QuotaExhausted) for _, exc in failed)


def test_counting_runs_beside_the_event_loop() -> None:
    # tiktoken releases the GIL: the loop keeps running while a slice is counted
    ticks = [0]

    async def main() -> None:
        async def tick() -> None:
            while True:
                ticks[0] += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        texts = long_texts(2_000)
        counts = [0] * len(texts)
        async for _ in counted_requests(texts, counts, SPEC, refuse=lambda i, n: False, slice_size=2_000, threads=1):
            pass
        ticker.cancel()

    asyncio.run(main())
    assert ticks[0] > 10


async def test_closing_stops_a_slice_being_counted_after_its_current_text() -> None:
    import time

    calls = [0]
    started = threading.Event()

    def slow(text: str) -> int:
        calls[0] += 1
        started.set()
        time.sleep(0.02)  # a long text: 1,000 of them would take 20 s
        return 10

    gen = counted_requests(["long"] * 1_000, [0] * 1_000, SPEC, refuse=lambda i, n: False, count=slow,
                           slice_size=1_000, threads=1)
    consumer = asyncio.ensure_future(anext(gen))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    await gen.aclose()
    await asyncio.sleep(0.2)
    stopped_at = calls[0]
    await asyncio.sleep(0.2)
    assert calls[0] == stopped_at < 50
    assert not [t for t in threading.enumerate() if t.name.startswith("tvdb-count")]


async def test_a_lone_surrogate_fails_its_own_input_only(tmp_path: Path) -> None:
    texts = long_texts(50)
    texts[7] = "\ud800 a lone surrogate from bad decoding"
    clock = FakeClock()
    failed: list[tuple[list[int], TvdbError]] = []
    with emulator() as server:
        settings = settings_for(server)
        embedder = build_openai_embedder(settings)
        try:
            vectors = await embed_batches(texts, embedder=embedder, caller=metered_caller(tmp_path, clock),
                                          settings=settings, clock=clock, scope=CallScope("run-1", "t", "embed", ()),
                                          on_error=lambda idx, exc: failed.append((list(idx), exc)))
        finally:
            await embedder.aclose()
        assert server.count() == 1
    assert [idx for idx, _ in failed] == [[7]]
    assert "lone surrogate" in str(failed[0][1])
    assert np.isnan(vectors[7]).all() and not np.isnan(np.delete(vectors, 7, axis=0)).any()
