"""With no stored vectors (a budget refusal), no vector check passes: each says there is nothing to check.
`max_cost_usd` still bounds the would-cost, and its detail says it is one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tvdb.pipeline.search import VectorStats
from tvdb.scenarios.expectations import _max_cost, _vector_checks
from tvdb.scenarios.results import UsageSummary
from tvdb.scenarios.schema import Expectations, VectorExpectation
from tvdb.settings import Settings


def _checks(stats: VectorStats) -> list[tuple[str, bool, str]]:
    ctx: Any = SimpleNamespace(settings=Settings())
    results = _vector_checks(ctx, Expectations(vectors=VectorExpectation()), stats)
    return [(r.description, r.passed, r.detail) for r in results]


def test_no_vectors_fails_every_vector_check_the_same_way() -> None:
    assert _checks(VectorStats(1536)) == [
        ("vectors have dimension 1536", False, "no vectors to check"),
        ("vectors are all finite", False, "no vectors to check"),
        ("vectors have unit norm", False, "no vectors to check"),
    ]


def test_stored_vectors_keep_their_details() -> None:
    stats = VectorStats(1536, rows=3, width=1536, nonfinite=0, worst_norm_error=1e-7)
    assert _checks(stats) == [
        ("vectors have dimension 1536", True, "3 vectors of dimension 1536"),
        ("vectors are all finite", True, "0 with NaN/inf"),
        ("vectors have unit norm", True, "largest |norm - 1| = 1.00e-07"),
    ]


def test_the_max_cost_detail_names_a_would_cost_when_nothing_was_spent() -> None:
    usage = UsageSummary(cost_usd=0.0, would_cost_usd=0.0075, unpriced_calls=0, requests={},
                         ingestion_would_cost_usd=0.0075)
    result = _max_cost(0.01, usage, retrieval=False)
    assert (result.description, result.passed, result.detail) == (
        "ingesting the documents costs at most $0.01 at live prices", True, "ingestion would cost $0.0075")
