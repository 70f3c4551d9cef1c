"""Request planning: valid requests, every input once, the fewest requests the API limits allow."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tvdb.catalog import EmbeddingModelSpec, embedding_model
from tvdb.services.batching import lower_bound, plan_batches

SPEC = embedding_model("text-embedding-3-small")
TINY = EmbeddingModelSpec(
    "tiny", 8, True, max_input_tokens=10, max_inputs_per_request=3, max_tokens_per_request=20
)


def assert_valid(plan: list[list[int]], counts: list[int], spec: EmbeddingModelSpec) -> None:
    assert sorted(i for request in plan for i in request) == list(range(len(counts)))
    for request in plan:
        assert request == sorted(request) and request
        assert len(request) <= spec.max_inputs_per_request
        assert sum(counts[i] for i in request) <= spec.max_tokens_per_request
    assert [r[0] for r in plan] == sorted(r[0] for r in plan)


def loads(plan: list[list[int]], counts: list[int]) -> list[int]:
    return [sum(counts[i] for i in request) for request in plan]


def next_fit(counts: list[int], spec: EmbeddingModelSpec) -> int:
    """Requests used by naive sequential filling: a plan must never need more."""
    requests, inputs, tokens = 1, 0, 0
    for count in counts:
        if inputs + 1 > spec.max_inputs_per_request or tokens + count > spec.max_tokens_per_request:
            requests, inputs, tokens = requests + 1, 0, 0
        inputs, tokens = inputs + 1, tokens + count
    return requests


def test_lower_bound() -> None:
    assert lower_bound([], SPEC) == 0
    assert lower_bound([1], SPEC) == 1
    assert lower_bound([1] * 2048, SPEC) == 1
    assert lower_bound([1] * 2049, SPEC) == 2
    assert lower_bound([150_000, 150_000], SPEC) == 1
    assert lower_bound([150_000, 150_001], SPEC) == 2
    assert lower_bound([200] * 20_000, SPEC) == 14  # 4.0M tokens / 300k
    assert lower_bound([10] * 20_480, SPEC) == 10  # inputs bind


def test_twenty_thousand_typical_chunks_use_exactly_the_minimum_in_balanced_contiguous_requests() -> None:
    rng = random.Random(20_000)
    counts = [rng.randint(150, 250) for _ in range(20_000)]
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    assert len(plan) == lower_bound(counts, SPEC) == 14
    assert all(request == list(range(request[0], request[-1] + 1)) for request in plan)  # contiguous
    assert max(loads(plan, counts)) - min(loads(plan, counts)) <= 2 * 250  # balanced within two inputs


def test_five_thousand_chunks_of_8000_tokens_use_the_true_minimum() -> None:
    """37 inputs of 8,000 fit in 300,000 tokens, so 5,000 need ⌈5000/37⌉ = 136 requests: the formula's
    134 is not reachable by any packing."""
    counts = [8_000] * 5_000
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    assert lower_bound(counts, SPEC) == 134
    assert len(plan) == math.ceil(5_000 / (300_000 // 8_000)) == 136
    assert {len(r) for r in plan} <= {36, 37}  # balanced


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([800] * 5_000, 14),
        ([1_000] * 1_000, 4),
        ([10] * 20_480, 10),  # inputs bind: exactly 2,048 per request
        ([146] * 20_480, 10),  # both limits nearly bind: 2,048 × 146 = 299,008 tokens
        ([8_192] * 36 + [100] * 41, 1),  # 294,912 + 4,100 = 299,012 tokens in 77 inputs
        ([8_192] * 37, 2),
    ],
)
def test_plans_reach_the_minimum(counts: list[int], expected: int) -> None:
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    assert len(plan) == expected


@pytest.mark.parametrize("seed", range(8))
def test_random_realistic_chunk_sizes_reach_the_lower_bound(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 6_000)
    top = rng.choice([300, 1_000, 4_000, 8_192])
    counts = [rng.randint(1, top) for _ in range(n)]
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    assert len(plan) == lower_bound(counts, SPEC)


def test_contiguity_gives_way_to_packing_when_it_saves_a_request() -> None:
    """[7, 7, 10, 8, 3] under 20 tokens per request: no two contiguous runs fit ([7, 7] leaves 21),
    but balanced decreasing first-fit packs them as {10, 7} and {8, 7, 3}."""
    counts = [7, 7, 10, 8, 3]
    plan = plan_batches(counts, TINY)
    assert_valid(plan, counts, TINY)
    assert len(plan) == 2
    assert sorted(loads(plan, counts)) == [17, 18]


def test_tight_packing_falls_back_to_first_fit() -> None:
    counts = [10, 6, 8, 7, 6]  # two requests of ≤ 20 tokens: {10, 8} is too loose, {10, 7}, {8, 6, 6} fits
    plan = plan_batches(counts, TINY)
    assert_valid(plan, counts, TINY)
    assert len(plan) == 2


def test_no_inputs_no_requests() -> None:
    assert plan_batches([], SPEC) == []


@pytest.mark.parametrize(("counts", "message"), [([5, 0], "input 1 has 0 tokens"), ([-3], "input 0 has -3")])
def test_empty_inputs_are_refused(counts: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_batches(counts, SPEC)


def test_over_cap_inputs_are_refused_for_the_chunker_to_split() -> None:
    """C06: 8,192 tokens is allowed, 8,193 never reaches a request."""
    assert plan_batches([8_192], SPEC) == [[0]]
    with pytest.raises(ValueError, match=r"input 2 has 8193 tokens, over text-embedding-3-small's per-input cap"):
        plan_batches([1, 2, 8_193], SPEC)


def test_limits_come_from_the_spec() -> None:
    narrow = replace(SPEC, max_inputs_per_request=4, max_tokens_per_request=50_000, max_input_tokens=5_000)
    counts = [1_000] * 10
    plan = plan_batches(counts, narrow)
    assert_valid(plan, counts, narrow)
    assert len(plan) == 3
    with pytest.raises(ValueError, match="cap of 5000"):
        plan_batches([5_001], narrow)


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(1, 8_192), max_size=3_000))
def test_every_plan_is_valid_and_never_worse_than_sequential_filling(counts: list[int]) -> None:
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    if counts:
        assert lower_bound(counts, SPEC) <= len(plan) <= next_fit(counts, SPEC)


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(st.integers(100, 1_000), min_size=1, max_size=4_000),
)
def test_typical_chunk_sizes_always_reach_the_lower_bound(counts: list[int]) -> None:
    """With inputs of ≤ 1,000 tokens, k requests are reachable whenever k·300k leaves a request's
    worth of slack per input size (an input never fails to fit while some request is below 299k)."""
    k = lower_bound(counts, SPEC)
    assume(sum(counts) <= k * (SPEC.max_tokens_per_request - 1_000))
    plan = plan_batches(counts, SPEC)
    assert_valid(plan, counts, SPEC)
    assert len(plan) == k


def _partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]
        yield [[first], *partition]


def _optimum(counts: list[int], spec: EmbeddingModelSpec) -> int:
    return min(
        len(p)
        for p in _partitions(list(range(len(counts))))
        if all(
            len(r) <= spec.max_inputs_per_request and sum(counts[i] for i in r) <= spec.max_tokens_per_request
            for r in p
        )
    )


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(1, 10), min_size=1, max_size=7))
def test_small_cases_against_brute_force(counts: list[int]) -> None:
    """Against an exhaustive search with tight limits (3 inputs, 20 tokens, inputs up to 10): the
    plan is valid and at most one request over the optimum (bin packing is NP-hard; with real limits
    inputs are tiny next to a request and the tests above show the minimum is reached)."""
    plan = plan_batches(counts, TINY)
    assert_valid(plan, counts, TINY)
    assert len(plan) <= _optimum(counts, TINY) + 1
