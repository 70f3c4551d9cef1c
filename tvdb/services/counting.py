"""Token counting overlapped with sending: requests are cut while tiktoken is still counting.

When `embed_batches` is given no token counts (the pipeline's chunker always gives them; a direct
caller may not), counting is the client's largest cost: about 1.5 s of CPU per million tokens of
English. tiktoken releases the GIL while it encodes, so `counted_requests` counts in worker threads,
slice after slice in input order, while the event loop sends the requests already cut and decodes
their answers.

`StreamPlanner` cuts them. It holds back up to `hold` requests' worth of counted inputs, so a job of
at most that size is planned exactly as with all counts known (`plan_batches`: the lower bound, in
balanced requests). Beyond that, each request leaves as soon as the inputs in front of the held
window fill it to a per-request limit (300,000 tokens or 2,048 inputs for text-embedding-3-small),
and the last window is planned by `plan_batches` when counting ends. A request cut early carries
more than `max_tokens − largest input` tokens (or the input limit), so a streamed job sends at most
one request more than the lower bound per ⌊max_tokens / largest input⌋ requests cut early: none for
200-token chunks below 1,500 requests, one in 36 for inputs of 8,192 tokens.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from tvdb.catalog import EmbeddingModelSpec
from tvdb.services.batching import plan_batches
from tvdb.tokens import get_encoding

SLICE = 256  # texts per counting task: ~25 ms of work for 200-token chunks, so the first request waits little


class StreamPlanner:
    """Requests cut from inputs whose token counts arrive in order (see the module docstring).

    `add(index, count)` takes the next sendable input and returns the requests now ready (lists of
    input indices, ascending); `finish()` returns the rest. Every added index appears in exactly one
    request, and every request respects `spec`'s per-request limits.
    """

    def __init__(self, spec: EmbeddingModelSpec, hold: int = 2) -> None:
        self.spec = spec
        self._max_tokens = hold * spec.max_tokens_per_request
        self._max_inputs = hold * spec.max_inputs_per_request
        self._pending: deque[tuple[int, int]] = deque()
        self._tokens = 0

    def add(self, index: int, count: int) -> list[list[int]]:
        self._pending.append((index, count))
        self._tokens += count
        ready: list[list[int]] = []
        while self._tokens > self._max_tokens or len(self._pending) > self._max_inputs:
            ready.append(self._cut())
        return ready

    def _cut(self) -> list[int]:
        """The longest run at the front of the held inputs that one request can carry."""
        cap_tokens, cap_inputs = self.spec.max_tokens_per_request, self.spec.max_inputs_per_request
        request: list[int] = []
        tokens = 0
        while self._pending and len(request) < cap_inputs and tokens + self._pending[0][1] <= cap_tokens:
            index, count = self._pending.popleft()
            request.append(index)
            tokens += count
        self._tokens -= tokens
        return request

    def finish(self) -> list[list[int]]:
        held = list(self._pending)
        self._pending.clear()
        self._tokens = 0
        plan = plan_batches([count for _, count in held], self.spec)
        return [[held[j][0] for j in batch] for batch in plan]


def counting_threads() -> int:
    """Worker threads for counting: two where there are two cores or more (measured: 1.68 s → 1.01 s
    for 4M tokens on 2 cores), one on a single core, where a second thread only adds switching."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


async def counted_requests(
    texts: Sequence[str],
    counts: list[int],
    spec: EmbeddingModelSpec,
    *,
    refuse: Callable[[int, int], bool],
    threads: int | None = None,
    count: Callable[[str], int] | None = None,
    slice_size: int = SLICE,
) -> AsyncGenerator[list[int], None]:
    """Count `texts` with tiktoken in worker threads and yield requests (input indices) as they are cut.

    Fills `counts[i]` with text i's token count before yielding any request holding i (`counts` has
    len(texts) entries). `refuse(i, count)` is asked about every input in order and returns True to
    keep it out of every request (empty, or over the per-input cap). The threads stop when the caller
    stops iterating (`aclose()`, or an exception in the caller). `count(text)` replaces tiktoken's
    count (it runs in the worker threads); `slice_size` texts are counted per task.
    Raises TokenizerUnavailable before counting when the vocabulary cannot be loaded.
    """
    counter = count or _tiktoken_count(spec.encoding)
    stop = threading.Event()

    def count_slice(start: int) -> list[int]:
        counted = []
        for text in texts[start:start + slice_size]:
            if stop.is_set():  # the caller is gone: a slice of long texts must not run on for seconds
                break
            counted.append(counter(text))
        return counted

    planner = StreamPlanner(spec)
    pool = ThreadPoolExecutor(max_workers=threads or counting_threads(), thread_name_prefix="tvdb-count")
    try:
        starts = range(0, len(texts), slice_size)
        futures = [asyncio.wrap_future(pool.submit(count_slice, start)) for start in starts]
        for start, future in zip(starts, futures, strict=True):
            for offset, n in enumerate(await future):
                i = start + offset
                counts[i] = n
                if not refuse(i, n):
                    for request in planner.add(i, n):
                        yield request
        for request in planner.finish():
            yield request
    finally:
        # slices not started are dropped; the ones running stop after the text they are counting
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)


def _tiktoken_count(encoding_name: str) -> Callable[[str], int]:
    """tiktoken's count as the embeddings API counts (no special tokens); loads the vocabulary now."""
    encoding = get_encoding(encoding_name)
    return lambda text: len(encoding.encode_ordinary(text))
