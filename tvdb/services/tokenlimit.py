"""The account's tokens-per-minute limit, and the largest embeddings request it lets through.

The API refuses every request that carries more tokens than the account may send in a minute
(429 `rate_limit_exceeded`, type `tokens`: "Request too large for text-embedding-3-small … on tokens
per min (TPM): Limit 150000, Requested 300060. The input or output tokens must be reduced", the body
third-party reports show), however long one waits: retrying it only spends the retry policy's
attempts and their retry-after waits. Every answer, a 429 too, names that limit in
`x-ratelimit-limit-tokens` (contracts.md §1.6).

`AccountTokenLimit` keeps the lowest limit known: `limits.openai_tokens_per_minute` when set (the
user's own ceiling), lowered by every answer's header. The embed driver (tvdb.services.embedding)
plans requests under it once known (`capped`), checks each request against it right before sending
(`check`: no request over it is sent once it is known), turns the 429 of a request sent before it
was known into `RequestOverTokenLimit` (`guarded`: permanent, so not retried), and re-sends such a
request split into parts under the limit (`split`). An input over the limit on its own cannot be
sent at all and fails with `refuse_input`'s error, which names the limit and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from tvdb.catalog import EmbeddingModelSpec
from tvdb.domain import EmbeddingResult, RateLimits
from tvdb.errors import RateLimitExceeded, RequestOverTokenLimit
from tvdb.services.batching import plan_batches

HEADER = "x-ratelimit-limit-tokens"
SETTING = "limits.openai_tokens_per_minute"
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
log = logging.getLogger(__name__)


class AccountTokenLimit:
    """The lowest tokens-per-minute limit known (None: none yet) and where it came from (`source`).

    One instance serves every request of a run, so that what one answer taught holds for the next
    group of requests too. Only lowered, never raised: a request is never sent over a limit once
    seen, and an account whose limit grows mid-run only gets smaller requests than it could take."""

    def __init__(self, configured: int | None = None) -> None:
        self.tokens: int | None = configured
        self.source = SETTING

    def learn(self, limits: RateLimits | None) -> None:
        """Take the `x-ratelimit-limit-tokens` of one answer (no-op without it, or when not lower)."""
        reported = limits.limit_tokens if limits is not None else None
        # 0 would refuse every request: no account is set up so, a proxy that says it is wrong
        if reported is None or reported < 1 or (self.tokens is not None and reported >= self.tokens):
            return
        log.info("openai: the account's limit is %d tokens per minute (%s); no request will carry more",
                 reported, HEADER)
        self.tokens, self.source = reported, HEADER

    def over(self, tokens: int) -> bool:
        return self.tokens is not None and tokens > self.tokens

    def check(self, tokens: int, service: str) -> None:
        """Raise RequestOverTokenLimit (nothing sent, no status) for a request over the known limit."""
        if self.tokens is not None and tokens > self.tokens:
            raise RequestOverTokenLimit(
                f"{service}: a request of {tokens} tokens is over the account's limit of {self.tokens} tokens "
                f"per minute ({self.source}); not sent", tokens=tokens, limit=self.tokens, service=service,
                code="request_over_token_limit")

    def refuse_input(self, index: int, tokens: int, service: str) -> RequestOverTokenLimit:
        """The error of input `index`, alone over the limit: no request can carry it."""
        assert self.tokens is not None, "refuse_input needs a known limit"
        fix = (f"raise {SETTING}" if self.source == SETTING else
               f"ask OpenAI for a higher tokens-per-minute limit ({RATE_LIMITS_URL})")
        return RequestOverTokenLimit(
            f"{service}: input {index} has {tokens} tokens, over the account's limit of {self.tokens} tokens per "
            f"minute ({self.source}): the API refuses any request that carries it, however long one waits; not "
            f"sent. Chunk smaller (chunking.max_tokens ≤ {self.tokens}) or {fix}",
            tokens=tokens, limit=self.tokens, service=service, code="input_over_token_limit")


def capped(spec: EmbeddingModelSpec, limit: int | None) -> EmbeddingModelSpec:
    """`spec` with no request, and so no input, over `limit` tokens: what the planners cut under."""
    if limit is None or limit >= spec.max_tokens_per_request:
        return spec
    return replace(spec, max_tokens_per_request=limit, max_input_tokens=min(spec.max_input_tokens, limit))


def split(
    indices: Sequence[int], counts: Sequence[int], spec: EmbeddingModelSpec, limit: int,
) -> tuple[list[list[int]], list[int]]:
    """`indices` re-planned as requests of at most `limit` tokens (plan_batches: the fewest it can),
    and the inputs that are over `limit` on their own, which no request can carry."""
    alone = [i for i in indices if counts[i] > limit]
    rest = [i for i in indices if counts[i] <= limit]
    plan = plan_batches([counts[i] for i in rest], capped(spec, limit))
    return [[rest[j] for j in part] for part in plan], alone


def guarded(
    send: Callable[[], Awaitable[EmbeddingResult]], tokens: int, limit: AccountTokenLimit, service: str,
) -> Callable[[], Awaitable[EmbeddingResult]]:
    """`send` that teaches `limit` each answer's header and turns the 429 of a request over the limit
    into RequestOverTokenLimit (status 429, not billed): the retry policy retries RateLimitExceeded,
    and would wait minutes for a window that can never hold this request."""

    async def send_once() -> EmbeddingResult:
        try:
            result = await send()
        except RateLimitExceeded as exc:
            limit.learn(exc.rate_limits)
            if limit.tokens is None or not limit.over(tokens):
                raise  # the window is full for now: waiting helps
            raise RequestOverTokenLimit(
                f"{exc.message} (a request of {tokens} tokens, over the account's limit of {limit.tokens} "
                f"tokens per minute, {limit.source}: not retried)", tokens=tokens, limit=limit.tokens,
                service=exc.service, status=exc.status, request_id=exc.request_id, code=exc.code,
            ) from exc
        limit.learn(result.rate_limits)
        return result

    return send_once
