"""Token-aware request planning for the embeddings API: the fewest requests its limits allow.

A request may carry at most `max_inputs_per_request` inputs and `max_tokens_per_request` tokens
summed over its inputs (tvdb.catalog; https://platform.openai.com/docs/api-reference/embeddings/create).
So n inputs totalling T tokens need at least

    lower_bound = max(⌈n / max_inputs⌉, ⌈T / max_tokens⌉)

requests. `plan_batches` tries k = lower_bound first and k + 1, k + 2, ... only when it finds no plan
with k requests, so it issues exactly the lower bound wherever its packers find a packing. Bin
packing is NP-hard, but with inputs of at most 8,192 tokens against 300,000 per request they
practically always do when one exists. Equal inputs of 8,000 tokens show where none exists: 37 fit in
a request, so 5,000 of them need 136 requests, not ⌈40M / 300k⌉ = 134.

For a given k it first looks for k *contiguous* requests (consecutive inputs, so one document's
chunks share few requests and a failed request touches few documents), each cut as close as
possible to an equal share of the remaining tokens; failing that, it packs largest input first into
the least-loaded request that has room (balanced decreasing first-fit), and failing that, into the
first request that has room (first-fit decreasing). The first two spread tokens evenly across
requests, which are sent concurrently.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Sequence

from tvdb.catalog import EmbeddingModelSpec


def lower_bound(token_counts: Sequence[int], spec: EmbeddingModelSpec) -> int:
    """The fewest requests that could carry these inputs; 0 for none.

    max(⌈n / max_inputs_per_request⌉, ⌈sum(token_counts) / max_tokens_per_request⌉).
    """
    if not token_counts:
        return 0
    return max(
        math.ceil(len(token_counts) / spec.max_inputs_per_request),
        math.ceil(sum(token_counts) / spec.max_tokens_per_request),
    )


def plan_batches(token_counts: Sequence[int], spec: EmbeddingModelSpec) -> list[list[int]]:
    """Partition input indices 0..n-1 into requests that respect `spec`'s per-request limits.

    `token_counts[i]` is input i's token count (tiktoken, as the API counts). Returns one list of
    input indices per request, each list ascending and the requests ordered by their first index;
    every index appears exactly once. Uses `lower_bound` requests wherever packing allows.

    Raises ValueError for an input with fewer than 1 token (the API refuses empty inputs) or more
    than `spec.max_input_tokens` (splitting long texts is the chunker's job), naming the index.
    """
    counts = list(token_counts)
    for index, count in enumerate(counts):
        if count < 1:
            raise ValueError(
                f"input {index} has {count} tokens: the embeddings API refuses empty inputs"
            )
        if count > spec.max_input_tokens:
            raise ValueError(
                f"input {index} has {count} tokens, over {spec.name}'s per-input cap of "
                f"{spec.max_input_tokens}; split it when chunking (tvdb.pipeline.chunk)"
            )
    if not counts:
        return []
    k = lower_bound(counts, spec)
    while True:  # ends: with k = len(counts) every input gets its own request
        plan = (
            _contiguous(counts, k, spec)
            or _decreasing_first_fit(counts, k, spec, balanced=True)
            or _decreasing_first_fit(counts, k, spec, balanced=False)
        )
        if plan is not None:
            return plan
        k += 1


def _contiguous(counts: list[int], k: int, spec: EmbeddingModelSpec) -> list[list[int]] | None:
    """At most k requests of consecutive inputs, each near an equal share of the tokens, or None."""
    n = len(counts)
    prefix = [0, *itertools.accumulate(counts)]
    cap_tokens, cap_inputs = spec.max_tokens_per_request, spec.max_inputs_per_request
    # farthest[s]: the largest end e such that inputs s..e-1 fit in one request.
    farthest = [
        min(bisect.bisect_right(prefix, prefix[s] + cap_tokens, lo=s) - 1, s + cap_inputs)
        for s in range(n)
    ]
    # needed[s]: the fewest requests for inputs s..n-1 (greedy farthest-first is optimal here).
    needed = [0] * (n + 1)
    for s in range(n - 1, -1, -1):
        needed[s] = 1 + needed[farthest[s]]
    if needed[0] > k:
        return None
    plan: list[list[int]] = []
    start = 0
    for remaining in range(min(k, n), 0, -1):
        if start == n:
            break
        hi = farthest[start]
        # Ends e that leave a suffix the other requests can carry: needed is non-increasing in e.
        lo = _first_at_most(needed, remaining - 1, start + 1, hi)
        target = prefix[start] + (prefix[n] - prefix[start]) / remaining
        end = min(max(bisect.bisect_left(prefix, target, lo=start), lo), hi)
        if end > lo and target - prefix[end - 1] <= prefix[end] - target:
            end -= 1  # the cut just before the target is closer
        plan.append(list(range(start, end)))
        start = end
    return plan if start == n else None


def _first_at_most(values: list[int], limit: int, lo: int, hi: int) -> int:
    """The first index in lo..hi whose value is ≤ limit (values non-increasing there); hi if none."""
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= limit:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _decreasing_first_fit(
    counts: list[int], k: int, spec: EmbeddingModelSpec, *, balanced: bool
) -> list[list[int]] | None:
    """k requests packed largest input first, or None when an input finds no room.

    balanced: into the least-loaded request with room (even loads); otherwise into the first
    request with room (classic first-fit decreasing, which packs tight cases the balanced rule
    misses, e.g. [10, 8, 7, 6, 6] into two requests of 20).
    """
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], i))
    members: list[list[int]] = [[] for _ in range(k)]
    loads = [0] * k
    if balanced:
        heap = [(0, b) for b in range(k)]  # (tokens, request): least-loaded first
        for index in order:
            while heap and len(members[heap[0][1]]) >= spec.max_inputs_per_request:
                heapq.heappop(heap)  # full on inputs: never a candidate again
            if not heap or heap[0][0] + counts[index] > spec.max_tokens_per_request:
                return None  # the least-loaded request has no room, so none has
            tokens, request = heapq.heappop(heap)
            members[request].append(index)
            heapq.heappush(heap, (tokens + counts[index], request))
    else:
        for index in order:
            for request in range(k):
                if (
                    len(members[request]) < spec.max_inputs_per_request
                    and loads[request] + counts[index] <= spec.max_tokens_per_request
                ):
                    members[request].append(index)
                    loads[request] += counts[index]
                    break
            else:
                return None
    plan = [sorted(m) for m in members if m]
    plan.sort(key=lambda m: m[0])
    return plan


def group_sizes(token_counts: Sequence[int], spec: EmbeddingModelSpec, lookahead: int) -> list[int]:
    """How the pipeline's embed queue (tvdb.pipeline.embed) splits a stream of inputs into groups
    planned together: each group but the last is the longest run that `lookahead` requests could
    carry (≤ lookahead × max_inputs inputs and ≤ lookahead × max_tokens tokens; a lone input over
    that is a group of its own). Returns the groups' sizes, in order; they sum to len(token_counts).

    The requests of a stream are `sum(len(plan_batches(group)))`, at least the sum of the groups'
    lower bounds, and that exceeds the whole stream's `lower_bound` by at most
    ⌈(groups − 1) × largest input / max_tokens⌉ (each full group falls short of its capacity by less
    than one input).
    """
    max_inputs, max_tokens = lookahead * spec.max_inputs_per_request, lookahead * spec.max_tokens_per_request
    sizes: list[int] = []
    size = tokens = 0
    for count in token_counts:
        if size and (size == max_inputs or tokens + count > max_tokens):
            sizes.append(size)
            size = tokens = 0
        size += 1
        tokens += count
    if size:
        sizes.append(size)
    return sizes
