"""The batched embedding driver used by the pipeline's embed stage and by `bench/embed.py`.

    texts ─► token counts given ─► plan_batches (fewest requests the limits allow)
          └► no counts: tiktoken in worker threads, requests cut as counts arrive (tvdb.services.counting)
          ─► per request: ServiceCaller.call (retry policy; per attempt RPM/TPM pacing, then the
             budget reservation, then the request; usage rows)
          ─► validate vectors ─► on_batch(indices, completed)   (store + commit, one transaction)
          ─► optional consistency check ─► float32 (n, d) in input order

At most `settings.embedding.concurrency` requests are in flight: a fixed number, or `auto`, which
follows the answers' `x-ratelimit-remaining-*` headers (tvdb.services.inflight). When
`settings.limits.openai_requests_per_minute` / `openai_tokens_per_minute` are set, requests wait
(on the injected clock) until sending keeps the last 60 s inside them: the client-side TPM guard.
Inputs the API would refuse (empty, over the model's per-input cap, or not encodable as UTF-8) are
never sent.

No request carries more tokens than the account may send in a minute once that limit is known
(`x-ratelimit-limit-tokens` of any answer, a 429's too, or `limits.openai_tokens_per_minute`;
tvdb.services.tokenlimit): requests are planned under it, one planned before it was known is split
before it is sent, and one the API refused for it (429) is split and its parts re-sent, one after
another, instead of being retried as it is. An input over the limit on its own fails with an error
that names the limit.

A request that fails for good is reported to `on_error(indices, error)` and its rows are NaN in the
returned array; with no `on_error` nothing more is sent and the first error is raised once the
requests in flight end.
Errors that doom every later request (quota exhausted, bad key, unknown model, budget refused) stop
the requests not yet sent: they are reported with the same error, without a request. The first
request is sent alone for that reason, so a run with no quota makes exactly one request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tvdb import catalog
from tvdb.clock import Clock
from tvdb.domain import EmbeddingRequest, EmbeddingResult, Implementation, Stage
from tvdb.errors import (
    CostLimitExceeded,
    PermanentServiceError,
    PriceUnknownError,
    QuotaExhausted,
    RequestOverTokenLimit,
    StorageError,
    TvdbError,
    VectorValidationError,
)
from tvdb.ledger.guard import CallScope
from tvdb.services.calls import CallSpec, Completed, ServiceCaller
from tvdb.services.tokenlimit import AccountTokenLimit, capped, guarded, split

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tvdb.config import Settings
    from tvdb.services.protocols import Embedder
    from tvdb.services.router import Provenance, ServiceRouter

OnBatch = Callable[[Sequence[int], Completed[EmbeddingResult]], None]
OnError = Callable[[Sequence[int], TvdbError], None]
log = logging.getLogger(__name__)
WINDOW_S = 60.0


class RatePacer:
    """Client-side sliding-window guard: `acquire(tokens)` waits until one more request of `tokens`
    keeps the last 60 s within `rpm` requests and `tpm` tokens (None: no limit)."""

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock) -> None:
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self._sent: deque[tuple[float, int]] = deque()
        self._tokens = 0

    def _wait_s(self, tokens: int) -> float:
        now = self.clock.monotonic()
        while self._sent and self._sent[0][0] <= now - WINDOW_S:
            self._tokens -= self._sent.popleft()[1]
        wait = 0.0
        if self.rpm is not None and len(self._sent) >= self.rpm:
            wait = self._sent[len(self._sent) - self.rpm][0] + WINDOW_S - now
        if self.tpm is not None and self._tokens + tokens > self.tpm and self._sent:
            freed = 0
            for t, n in self._sent:
                freed += n
                if self._tokens - freed + tokens <= self.tpm:
                    wait = max(wait, t + WINDOW_S - now)
                    break
            else:
                wait = max(wait, self._sent[-1][0] + WINDOW_S - now)
        return wait

    async def acquire(self, tokens: int) -> None:
        if self.rpm is None and self.tpm is None:
            return
        while (wait := self._wait_s(tokens)) > 0:
            log.info("pacing: waiting %.3fs to stay inside the per-minute limits", wait)
            await self.clock.sleep(wait)
        self._sent.append((self.clock.monotonic(), tokens))
        self._tokens += tokens


def stops_everything(exc: TvdbError) -> bool:
    """Whether `exc` dooms every later request too (quota, budget, unknown price, bad key or model)."""
    if isinstance(exc, QuotaExhausted | CostLimitExceeded | PriceUnknownError):
        return True
    return isinstance(exc, PermanentServiceError) and exc.status in (401, 403, 404)


def embedding_call_spec(
    embedder: Embedder, request: EmbeddingRequest, settings: Settings, *, provenance: Provenance | None = None,
    send: Callable[[], Awaitable[EmbeddingResult]] | None = None,
) -> CallSpec[EmbeddingResult]:
    """The metered call for one embeddings request: estimated at its tiktoken count, billed at the
    response's `usage.prompt_tokens`. `send` replaces the plain `embedder.embed(request)`."""
    return CallSpec(
        service=embedder.service, implementation=provenance.implementation if provenance else embedder.implementation,
        model=request.model, unit="tokens",
        estimate_units=request.token_count, send=send or (lambda: embedder.embed(request)),
        actual_units=lambda r: r.prompt_tokens, usage_of=lambda r: r.usage, request_id_of=lambda r: r.request_id,
        provenance=provenance.reason if provenance else None, run_budget_usd=settings.budget.max_usd,
        replayed=lambda r: r.replayed,
    )


async def embed_batches(
    texts: Sequence[str],
    *,
    settings: Settings,
    clock: Clock,
    router: ServiceRouter | None = None,
    embedder: Embedder | None = None,
    caller: ServiceCaller | None = None,
    token_counts: Sequence[int] | None = None,
    scope: CallScope | None = None,
    scope_for: Callable[[Sequence[int]], CallScope] | None = None,
    on_batch: OnBatch | None = None,
    on_error: OnError | None = None,
    want: Implementation | None = None,
    why: str = "",
    keep_vectors: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    probe: bool = True,
    token_limit: AccountTokenLimit | None = None,
) -> npt.NDArray[np.float32]:
    """Embed `texts` in the fewest requests; float32 (len(texts), d), NaN rows for failed inputs.

    `keep_vectors=False` (the pipeline, whose `on_batch` stores each batch) keeps no vectors once
    stored and returns a (0, d) array, so memory does not grow with the corpus; the vectors are
    kept all the same when the consistency check needs them (`embedding.consistency_check.sample`).

    Each request is routed by `router` (which implementation, and why; hybrid fallbacks), or sent
    to the fixed `embedder` through `caller`. `want`/`why` force one implementation (one space).
    `scope_for(indices)` (or the fixed `scope`) names the run/jobs of each request's usage rows.
    `on_batch` stores a batch's vectors and must commit `completed.commit(db, budget)` in the same
    transaction; by default only the usage row is committed. `on_progress(finished, planned)` is
    called once the requests are planned and after each one ends (answered or failed: a progress
    display's "embed 3/5 requests"). `probe=False` sends the first request with the others (the
    caller already knows the key and quota work: a later group of the pipeline's embed queue).
    `token_limit` carries the account's tokens-per-minute limit from one call to the next (the
    embed queue's groups); by default each call starts from `limits.openai_tokens_per_minute`.
    Raises the first failure when `on_error` is None; VectorValidationError when the consistency
    check fails.
    """
    import numpy as np

    from tvdb.services.batching import plan_batches
    from tvdb.services.counting import counted_requests
    from tvdb.services.inflight import InFlightLimit
    from tvdb.services.router import fixed_router

    if router is None:
        assert embedder is not None and caller is not None, "embed_batches needs a router, or an embedder and a caller"
        router = fixed_router(caller, embedder=embedder)
    caller = router.caller
    service = router.embedder.service
    s = settings.embedding
    spec = catalog.embedding_model(s.model)
    dims = s.resolved_dimensions
    n = len(texts)
    keep = keep_vectors or bool(s.consistency_check.sample)
    out = np.empty((n if keep else 0, dims), dtype=np.float32)
    filled = np.zeros(n, dtype=bool)
    errors: list[TvdbError] = []
    limit = token_limit if token_limit is not None else AccountTokenLimit(settings.limits.openai_tokens_per_minute)

    def fail(indices: Sequence[int], exc: TvdbError) -> None:
        if on_error is None:
            errors.append(exc)
        else:
            on_error(indices, exc)

    def refused(i: int, count: int) -> bool:
        """Inputs the API would refuse are failed here and never sent."""
        text = texts[i]
        if text.strip() and count <= spec.max_input_tokens and (text.isascii() or _utf8(text)):
            if not limit.over(count):
                return False
            fail([i], limit.refuse_input(i, count, service))
            return True
        problem = ("is empty" if not text.strip() else
                   f"has {count} tokens, over the {spec.max_input_tokens} cap" if count > spec.max_input_tokens else
                   "is not valid Unicode (a lone surrogate): it cannot be sent as UTF-8")
        fail([i], PermanentServiceError(f"{service}: input {i} {problem}; not sent", service=service,
                                        code="invalid_input"))
        return True

    if token_counts is not None:
        counts = list(token_counts)
        if len(counts) != n:
            raise ValueError(f"{len(counts)} token counts for {n} texts")
        sendable = [i for i in range(n) if not refused(i, counts[i])]
        plan = plan_batches([counts[i] for i in sendable], capped(spec, limit.tokens))
        batches = [[sendable[j] for j in batch] for batch in plan]
        log.info("embedding %d inputs (%d tokens) in %d requests", len(sendable),
                 sum(counts[i] for i in sendable), len(plan))
        planned: AsyncGenerator[list[int], None] = _listed(batches)
    else:
        # counting overlaps with sending: requests are cut as tiktoken's counts arrive
        counts = [0] * n
        planned = counted_requests(texts, counts, capped(spec, limit.tokens), refuse=refused)
    streamed = token_counts is None
    pacer = RatePacer(settings.limits.openai_requests_per_minute, settings.limits.openai_tokens_per_minute, clock)
    # `auto`: as many in flight as the last answer's x-ratelimit-remaining-* headers allow
    gate = InFlightLimit(None if s.concurrency == "auto" else s.concurrency)
    stopped: list[TvdbError] = []
    spaces: set[Implementation] = set()  # implementations that answered: the consistency check needs one
    commit: OnBatch = on_batch or (lambda _i, done: done.commit(caller.db, caller.budget))

    def spec_maker(batch: Sequence[int]) -> Callable[[Embedder, Provenance], CallSpec[EmbeddingResult]]:
        tokens = sum(counts[i] for i in batch)
        # the counts travel with the texts: a local embedder does not count them again
        request = EmbeddingRequest(tuple(texts[i] for i in batch), s.model, dims, tokens,
                                   tuple(counts[i] for i in batch))

        def make(embedder: Embedder, provenance: Provenance) -> CallSpec[EmbeddingResult]:
            spec = embedding_call_spec(embedder, request, settings, provenance=provenance)
            if provenance.implementation is not Implementation.REAL:
                return spec  # the per-minute limits are the real API's

            async def pace() -> None:
                # before the reservation: a request over the known limit takes no budget and is not sent
                limit.check(tokens, service)
                await pacer.acquire(tokens)  # every real attempt counts against the per-minute limits
                limit.check(tokens, service)  # an answer during the wait may have taught the limit

            # paced before its reservation is taken; every answer may teach the account's limit
            return replace(spec, before_send=pace, send=guarded(spec.send, tokens, limit, service))

        return make

    def scope_of(batch: Sequence[int]) -> CallScope:
        if scope_for is not None:
            return scope_for(batch)
        return scope or CallScope(None, None, Stage.EMBED)

    # requests ended, requests planned (streamed: it grows as requests are cut)
    finished, total = [0], [0 if streamed else len(batches)]

    def progress() -> None:
        if on_progress is not None:
            on_progress(finished[0], total[0])

    def ended() -> None:
        finished[0] += 1
        progress()

    async def run(batch: list[int]) -> None:
        try:
            await send(batch)
        finally:
            ended()

    async def send(batch: list[int]) -> None:
        over = await send_once(batch)
        if over is not None:  # outside the gate: each part waits for its turn like any request
            await send_split(batch, over)

    async def send_split(batch: list[int], over: RequestOverTokenLimit) -> None:
        cap = min(over.limit, limit.tokens or over.limit)  # the limit may have dropped again since
        parts, alone = split(batch, counts, spec, cap)
        # refused by the API (429) is worth a warning; cut before sending is the plan working
        log.log(logging.WARNING if over.status is not None else logging.INFO,
                "%s: a request of %d tokens is over the account's limit of %d tokens per minute (%s); "
                "sending its %d inputs as %d requests", service, over.tokens, cap, limit.source, len(batch),
                len(parts))
        for i in alone:
            fail([i], limit.refuse_input(i, counts[i], service))
        total[0] += len(parts)
        progress()
        # one after another: each part is near the whole minute's tokens, so sending them at once
        # would only collect 429s (and their retry-after waits) for all but one
        for part in parts:
            await run(part)

    async def send_once(batch: list[int]) -> RequestOverTokenLimit | None:
        """Send `batch` as one request; the error that says it must be split, else None."""
        async with gate:
            if stopped:
                fail(batch, stopped[0])
                return None
            try:
                done = await router.call(router.embedder, scope_of(batch), spec_maker(batch), want=want, why=why)
            except StorageError:
                raise  # nothing more is sent while the ledger cannot be written
            except RequestOverTokenLimit as exc:
                return exc
            except TvdbError as exc:
                # without on_error the call raises anyway: nothing more is worth sending
                if (on_error is None or stops_everything(exc)) and not stopped:
                    stopped.append(exc)
                fail(batch, exc)
                return None
            if done.row.implementation is not Implementation.REPLAY:  # a cassette's remaining counts are not today's
                await gate.observe(done.value.rate_limits, sum(counts[i] for i in batch))
            try:
                vectors = _validated(done.value.vectors, len(batch), dims)
            except VectorValidationError as exc:
                done.commit(caller.db, caller.budget)  # the request was paid for all the same
                fail(batch, exc)
                return None
            commit(batch, done)
            rows = _rows(batch)
            if keep:
                out[rows] = vectors
            filled[rows] = True
            spaces.add(done.row.implementation.space)
        return None

    def planned_one() -> None:
        if streamed:
            total[0] += 1
            progress()

    progress()
    await _dispatch(planned, run, probe=probe, on_cut=planned_one)
    if keep:
        out[~filled] = np.nan
    if s.consistency_check.sample and not errors and len(spaces) == 1:
        await _consistency_check(texts, counts, out, router=router, settings=settings, scope=scope_of, fail=fail,
                                 space=spaces.pop(), cap=capped(spec, limit.tokens).max_tokens_per_request)
    if errors:
        raise errors[0]
    return out


def _rows(batch: list[int]) -> slice | list[int]:
    """`batch`'s rows as a slice when they are consecutive and ascending (they are, but around refused
    inputs): numpy copies a slice's rows without building an index array of 1,000s of rows."""
    if batch and batch == list(range(batch[0], batch[0] + len(batch))):
        return slice(batch[0], batch[0] + len(batch))
    return batch


def _utf8(text: str) -> bool:
    """Whether `text` can be sent as UTF-8 (not if it holds a lone surrogate, e.g. from bad decoding)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _listed(batches: list[list[int]]) -> AsyncGenerator[list[int], None]:
    for batch in batches:
        yield batch


async def _dispatch(
    planned: AsyncGenerator[list[int], None], run: Callable[[list[int]], Coroutine[Any, Any, None]], *,
    probe: bool, on_cut: Callable[[], None],
) -> None:
    """Start `run(batch)` for each request as it is planned (the gate in `run` bounds how many are in
    flight); with `probe` the first runs alone before any other starts: if the key, the model or the
    quota is bad, that one request says so and nothing else is sent (CASES C07).

    If a run raises (a bug, the ledger unwritable, a cassette miss, Ctrl-C), nothing more is started
    and the others are cancelled and awaited before re-raising, so no request is left running
    unobserved; the planner (and its counting threads) is closed either way.
    """
    tasks: list[asyncio.Task[None]] = []
    broken: list[asyncio.Task[None]] = []

    def ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            broken.append(task)

    try:
        async for batch in planned:
            on_cut()
            if probe:
                probe = False
                await run(batch)
                continue
            tasks.append(asyncio.ensure_future(run(batch)))
            tasks[-1].add_done_callback(ended)
            if broken:
                break  # gather below raises it
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        await planned.aclose()


def _validated(vectors: npt.NDArray[np.float32], rows: int, dims: int) -> npt.NDArray[np.float32]:
    from tvdb.vectors import validate_vectors

    validate_vectors(vectors, expected_rows=rows, dimensions=dims)
    return vectors


async def _consistency_check(
    texts: Sequence[str], counts: Sequence[int], first: npt.NDArray[np.float32], *, router: ServiceRouter,
    settings: Settings, scope: Callable[[Sequence[int]], CallScope], fail: OnError, space: Implementation, cap: int,
) -> None:
    """Re-embed an evenly spaced sample in one request, with the implementation that embedded them
    (`space`); each cosine with the first result must reach `min_cosine`, else VectorValidationError
    for the inputs that drifted. Skipped by the caller when the inputs went to several implementations.
    The sample carries at most `cap` tokens (the model's, or the account's per-minute limit)."""
    import numpy as np

    check = settings.embedding.consistency_check
    done_rows = [i for i in range(len(texts)) if not np.isnan(first[i]).any()]
    if not done_rows:
        return
    step = max(1, len(done_rows) // check.sample)
    sample = done_rows[::step][: check.sample]
    while sum(counts[i] for i in sample) > cap:  # long chunks: a smaller sample, still one request
        sample = sample[: len(sample) // 2]
    tokens = sum(counts[i] for i in sample)
    request = EmbeddingRequest(tuple(texts[i] for i in sample), settings.embedding.model,
                               settings.embedding.resolved_dimensions, tokens, tuple(counts[i] for i in sample))
    try:
        done = await router.call(
            router.embedder, scope(sample),
            lambda embedder, prov: embedding_call_spec(embedder, request, settings, provenance=prov),
            want=space, why="consistency check: re-embedding a sample")
    except StorageError:
        raise
    except TvdbError as exc:
        # the vectors are paid for and valid: a check that cannot be made (refused by a budget, a
        # service error) does not fail them
        log.warning("consistency check not made, the vectors stand: %s", exc)
        return
    done.commit(router.caller.db, router.caller.budget)
    again = np.asarray(done.value.vectors, dtype=np.float32)
    a, b = first[sample], again
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    drifted = [i for i, c in zip(sample, cos, strict=True) if not c >= check.min_cosine]
    if drifted:
        worst = float(np.nanmin(cos))
        fail(drifted, VectorValidationError(
            f"consistency check: re-embedding {len(sample)} inputs gave cosine {worst:.4f} < "
            f"{check.min_cosine} for {len(drifted)} of them (inputs {drifted[:5]})"))
