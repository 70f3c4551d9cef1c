"""Answers that wait to be decoded while tiktoken counts: decoding yields the GIL to counting.

When `embed_batches` counts the tokens itself (tvdb.services.counting), the event loop and the
counting threads share one GIL. Decoding an answer (`json.loads` and base64 of ~12 MB for 1,400
vectors of 1,536 dimensions) holds it for tens of milliseconds at a time, and each of those pauses
stalls both counting threads, which need the GIL at every text's start and end; the last request
can only be cut when the last count is in, so every stall lengthens the whole job. `AnswerHold`
lets an answer already received wait, undecoded, until counting ends (measured in bench/embed.py:
the README's Benchmark section), within three bounds:

- at most `max_bytes` of answer bodies wait at once (a later answer is decoded at once);
- an answer never waits while another request waits for an in-flight slot (`slot_wanted`, and
  `flush` for those already waiting): a held answer keeps its request's slot, and sending matters
  more than counting;
- the request sent alone first (the probe) never waits: everything else waits for its answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HOLD_BYTES = 256 * 2**20  # ~20 answers of 1,400 vectors: the 4M-token benchmark job holds all 13


class AnswerHold:
    """Where answers wait, undecoded, until `open()` (counting ended) or `flush()` (a request
    wants a slot: the in-flight gate's `on_full`). `held_bytes` is the size of the bodies waiting
    now, `peak_bytes` the most at once."""

    def __init__(self, max_bytes: int = HOLD_BYTES, *, slot_wanted: Callable[[], bool] = lambda: False) -> None:
        self.max_bytes, self.slot_wanted = max_bytes, slot_wanted
        self.held_bytes = self.peak_bytes = 0
        self._open = False
        self._flushed: asyncio.Event | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    async def wait(self, size: int) -> None:
        """Wait, holding an answer body of `size` bytes, until the hold opens or is flushed; return
        at once when it is open, when the body would take the held bytes over `max_bytes`, or when
        `slot_wanted()` (a request waits for the in-flight slot this answer's request holds)."""
        if self._open or self.held_bytes + size > self.max_bytes or self.slot_wanted():
            return
        if self._flushed is None:
            self._flushed = asyncio.Event()
        flushed = self._flushed
        self.held_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        try:
            await flushed.wait()
        finally:
            self.held_bytes -= size

    def flush(self) -> None:
        """Let every answer waiting now be decoded; later answers may wait again."""
        if self._flushed is not None:
            self._flushed.set()
            self._flushed = None

    def open(self) -> None:
        """Let every answer be decoded, now and from now on (counting ended, or the job did)."""
        self._open = True
        self.flush()
