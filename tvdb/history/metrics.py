"""Per-stage metrics of one run, from its job stage times and its usage rows.

Latency is the wall time each document spent in a stage (milliseconds, p50/p95 over documents);
a stage no document passes through (`query`: retrieval expectations' query embeddings) takes its
latency from its calls instead, so `runs compare` can still see it regress. Calls are request
attempts of that stage (one usage row each): an error rate is failed attempts over attempts, a retry
rate is attempts after the first over attempts. A document the run reused from an earlier one made no
parse or embed call, yet that stage's work for it succeeded (the first time, when it was stored): it
counts in both rates' denominator, so a run that reuses four documents and parses again only the one
that failed before is not read as `1 of 1` failing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tvdb.domain import Stage
from tvdb.history.store import CallRecord, DocumentRecord

STAGE_ORDER = (*(s.value for s in Stage), "query")
REUSED_STAGES = ("parse", "embed")  # the call stages a reused document skips


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class StageMetrics:
    """One stage of one run. Milliseconds, counts, nano-USD (None: a call has no known price)."""

    stage: str
    documents: int  # documents with a recorded time in this stage
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    attempts: int
    errors: int
    retries: int
    errors_by_code: dict[str, int] = field(default_factory=dict)
    call_p50_ms: float | None = None
    call_p95_ms: float | None = None
    units: float = 0.0
    credits: float | None = None
    spent_nusd: int | None = 0
    would_cost_nusd: int | None = 0
    reused: int = 0  # documents reused from an earlier run: no call, counted as one successful first try

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.attempts_and_reused if self.attempts_and_reused else None

    @property
    def retry_rate(self) -> float | None:
        return self.retries / self.attempts_and_reused if self.attempts_and_reused else None

    @property
    def attempts_and_reused(self) -> int:
        return self.attempts + self.reused

    def as_json(self) -> dict[str, Any]:
        from tvdb.ledger.prices import nusd_to_usd

        return {
            "stage": self.stage, "documents": self.documents, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "max_ms": self.max_ms, "attempts": self.attempts, "reused": self.reused, "errors": self.errors,
            "retries": self.retries,
            "error_rate": self.error_rate, "retry_rate": self.retry_rate, "errors_by_code": self.errors_by_code,
            "call_p50_ms": self.call_p50_ms, "call_p95_ms": self.call_p95_ms, "units": self.units,
            "credits": self.credits,
            "spent_usd": None if self.spent_nusd is None else nusd_to_usd(self.spent_nusd),
            "would_cost_usd": None if self.would_cost_nusd is None else nusd_to_usd(self.would_cost_nusd),
        }


def _sum(values: Sequence[int | None]) -> int | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def stage_metrics(documents: Sequence[DocumentRecord], calls: Sequence[CallRecord]) -> list[StageMetrics]:
    """Metrics of every stage that has a time or a call, in pipeline order."""
    times: dict[str, list[float]] = {}
    for d in documents:
        for stage, ms in d.stage_ms.items():
            times.setdefault(stage, []).append(ms)
    by_stage: dict[str, list[CallRecord]] = {}
    for c in calls:
        by_stage.setdefault(c.stage, []).append(c)
    reused = sum(1 for d in documents if d.reused_from)
    # a run that reused every document made no parse or embed call, yet has those stages' rates
    # (each reused document one successful first try), not a blank where a comparison needs a number
    called = set(times) | set(by_stage) | (set(REUSED_STAGES) if reused else set())
    stages = sorted(called, key=lambda s: (STAGE_ORDER + (s,)).index(s))
    out = []
    for stage in stages:
        rows = by_stage.get(stage, [])
        ok = [c for c in rows if c.ok]
        latencies = [c.latency_ms for c in rows if c.latency_ms is not None]
        samples = times.get(stage, [])
        per_call = stage not in times
        credits = [c.credits for c in ok if c.credits is not None]
        out.append(StageMetrics(
            stage=stage, documents=len(samples),
            p50_ms=percentile(latencies if per_call else samples, 50),
            p95_ms=percentile(latencies if per_call else samples, 95),
            max_ms=max(latencies if per_call else samples, default=None), attempts=len(rows),
            errors=sum(1 for c in rows if not c.ok), retries=sum(1 for c in rows if c.attempt > 1),
            errors_by_code=dict(Counter(c.error_code or "error" for c in rows if not c.ok)),
            call_p50_ms=percentile(latencies, 50), call_p95_ms=percentile(latencies, 95),
            units=sum(c.units for c in ok), credits=sum(credits) if credits else None,
            spent_nusd=_sum([c.cost_nusd for c in rows]),
            would_cost_nusd=_sum([c.would_cost_nusd for c in ok]),
            reused=reused if stage in REUSED_STAGES else 0,
        ))
    return out
