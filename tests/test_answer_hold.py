"""Answers that wait, undecoded, while tvdb counts tokens (tvdb.services.holding): the hold's bounds,
and in `embed_batches` that every answer but the probe's is decoded after the last count, unless a
request is waiting for an in-flight slot."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tvdb.services.counting as counting
from tests.openai_support import emulator, metered_caller, settings_for
from tvdb.clock import FakeClock
from tvdb.domain import EmbeddingRequest, EmbeddingResult
from tvdb.http import Response
from tvdb.ledger.guard import CallScope
from tvdb.services.embedding import embed_batches
from tvdb.services.holding import AnswerHold
from tvdb.services.protocols import TwoStepEmbedder
from tvdb.services.remote.openai_embedder import OpenAIEmbedder, build_openai_embedder

TEXTS = 3_000  # counted as 1,000 tokens each: 300 a request, 10 requests, 600 inputs held back by the planner
BLOCK_AT = 2_400  # counting stops here until the `go_on`-th answer is in: requests 1-6 are cut by then


async def test_an_answer_waits_until_the_hold_opens() -> None:
    hold = AnswerHold(max_bytes=100)
    waiting = asyncio.ensure_future(hold.wait(60))
    await asyncio.sleep(0)
    assert not waiting.done() and hold.held_bytes == 60
    hold.open()
    await waiting
    assert hold.held_bytes == 0 and hold.peak_bytes == 60 and hold.is_open
    await asyncio.wait_for(hold.wait(60), 1)  # open: nothing waits any more


async def test_bodies_over_the_bound_are_decoded_at_once_and_flush_lets_the_waiting_go() -> None:
    hold = AnswerHold(max_bytes=100)
    first = asyncio.ensure_future(hold.wait(60))
    await asyncio.sleep(0)
    await asyncio.wait_for(hold.wait(41), 1)  # 60 + 41 > 100: not held
    assert hold.held_bytes == 60
    hold.flush()
    await asyncio.wait_for(first, 1)
    later = asyncio.ensure_future(hold.wait(10))  # a flush is not an open: a later answer waits again
    await asyncio.sleep(0)
    assert not later.done() and not hold.is_open
    hold.open()
    await later


class Recording(OpenAIEmbedder):
    """The real client, noting how many texts were counted when each answer was decoded."""

    def __init__(self, counted: list[int], go_on: int, answers_in: threading.Event, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counted, self.go_on, self.answers_in = counted, go_on, answers_in
        self.fetched = 0
        self.decoded_at: list[int] = []

    async def fetch(self, request: EmbeddingRequest) -> Response:
        answer = await super().fetch(request)
        self.fetched += 1
        if self.fetched == self.go_on:
            self.answers_in.set()
        return answer

    def decode(self, request: EmbeddingRequest, response: Response) -> EmbeddingResult:
        self.decoded_at.append(self.counted[0])
        return super().decode(request, response)


def blocking_counter(counted: list[int], answers_in: threading.Event) -> Callable[[str], Callable[[str], int]]:
    lock = threading.Lock()

    def make(_encoding: str) -> Callable[[str], int]:
        def count(_text: str) -> int:
            with lock:
                if counted[0] == BLOCK_AT:
                    assert answers_in.wait(timeout=10), "the answers never came while counting was held up"
                counted[0] += 1
            return 1_000
        return count

    return make


async def embed_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, go_on: int, **embedding: Any) -> Recording:
    """Embed TEXTS with counting held up at BLOCK_AT texts until the `go_on`-th answer is fetched."""
    counted, answers_in = [0], threading.Event()
    monkeypatch.setattr(counting, "_tiktoken_count", blocking_counter(counted, answers_in))
    clock = FakeClock()
    with emulator() as server:
        settings = settings_for(server, embedding=embedding)
        built = build_openai_embedder(settings)
        embedder = Recording(counted, go_on, answers_in, api_key="sk-test-hold", base_url=built.base_url,
                             http_client=built._http)
        assert isinstance(embedder, TwoStepEmbedder)
        try:
            vectors = await embed_batches(["hello"] * TEXTS, embedder=embedder, caller=metered_caller(tmp_path, clock),
                                          settings=settings, clock=clock, scope=CallScope("run-1", "t", "embed", ()))
        finally:
            await embedder.aclose()
    assert vectors.shape == (TEXTS, 1536) and not np.isnan(vectors).any()
    assert counted[0] == TEXTS and len(embedder.decoded_at) == 10
    return embedder


async def test_answers_but_the_probe_are_decoded_after_the_last_count(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = await embed_recorded(tmp_path, monkeypatch, go_on=2)
    # the probe is awaited before anything else is sent: decoded at once, while counting went on
    assert embedder.decoded_at[0] < TEXTS
    # answers 2-6 arrived while counting was held up at 2,400 texts, and still waited for the last count
    assert embedder.decoded_at[1:] == [TEXTS] * 9


async def test_a_request_waiting_for_a_slot_lets_the_held_answers_be_decoded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two in flight, more cut and waiting: counting goes on only once the 4th answer is in, and the
    # 4th request is sent only when an answer before it leaves its slot. Held, answers 2 and 3
    # would keep both slots until counting ended, and counting would wait for them in vain.
    embedder = await embed_recorded(tmp_path, monkeypatch, go_on=4, concurrency=2)
    assert embedder.decoded_at[1] == BLOCK_AT
