"""How many embedding requests are in flight at once: fixed, or following the provider's rate limits.

`embedding.concurrency: auto` (the default) starts at `AUTO_START` requests in flight and, after
every real answer, sets the limit from that answer's `x-ratelimit-remaining-*` headers
(https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers):

    limit = clamp(min(remaining requests, remaining tokens // tokens of the request just answered),
                  1, AUTO_MAX)

so an account with the minute's budget to spare gets up to `AUTO_MAX` requests at once, and one
near its limit slows down to what the window still holds instead of collecting 429s. The headers
count requests already admitted, those in flight among them, so the rule errs on the low side. An
answer without the headers (a proxy, a local embedder, a cassette) leaves the limit as it is.
`embedding.concurrency: N` fixes the limit at N whatever the headers say.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from tvdb.domain import RateLimits

AUTO_START = 4  # before any answer: what a fixed default used to be
AUTO_MAX = 16  # more in flight measured no faster (bench/embed.py) and only spreads a burst wider
log = logging.getLogger(__name__)


def limit_from(limits: RateLimits, request_tokens: int, maximum: int = AUTO_MAX) -> int | None:
    """The in-flight limit `limits` allow for requests of about `request_tokens` tokens; None when
    the headers carry neither remaining count."""
    room: list[int] = []
    if limits.remaining_requests is not None:
        room.append(limits.remaining_requests)
    if limits.remaining_tokens is not None:
        room.append(limits.remaining_tokens // max(1, request_tokens))
    if not room:
        return None
    return max(1, min(maximum, *room))


class InFlightLimit:
    """An async context manager that admits at most `limit` holders at once; `fixed=None` follows
    `observe`d rate limits (see the module docstring). `peak` is the most ever admitted at once."""

    def __init__(self, fixed: int | None, *, start: int = AUTO_START, maximum: int = AUTO_MAX) -> None:
        self.fixed, self.maximum = fixed, maximum
        self.limit = fixed if fixed is not None else start
        self.active = self.peak = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1
            self.peak = max(self.peak, self.active)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    async def observe(self, limits: RateLimits | None, request_tokens: int) -> None:
        """Follow the rate limits one answer reported (no-op when fixed or without headers)."""
        if self.fixed is not None or limits is None:
            return
        new = limit_from(limits, request_tokens, self.maximum)
        if new is None or new == self.limit:
            return
        log.info("embedding requests in flight: %d -> %d (x-ratelimit-remaining-requests %s, -tokens %s)",
                 self.limit, new, limits.remaining_requests, limits.remaining_tokens)
        async with self._changed:
            self.limit = new
            self._changed.notify_all()
