"""Compare two runs: per-stage latency, error and retry rates, cost, chunk counts, retrieval recall,
and for the documents both runs ingested, the cosine similarity of their vectors (same space only).

A regression is B worse than A: a stage's p95 latency up by more than `threshold_pct` percent (and
by at least `MIN_LATENCY_MS`: two identical mock runs differ by a few milliseconds of scheduling
and disk jitter, which is not a regression), a stage's error
rate (failed attempts / attempts) or retry rate (attempts after the first / attempts) up, the run's
cost at live prices up by more than `cost_tolerance_pct` percent (a few tokens more in one response
move a run's cost by thousandths of a percent, which is not a regression), or the share of retrieval
expectations that passed down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tvdb.history.metrics import StageMetrics, stage_metrics
from tvdb.history.store import DocumentRecord, DocumentVectors, RunStore, RunSummary
from tvdb.money import format_usd_pair

MIN_LATENCY_MS = 5.0
COST_TOLERANCE_PCT = 1.0


@dataclass(frozen=True, slots=True)
class StageDelta:
    stage: str
    a: StageMetrics | None
    b: StageMetrics | None
    p95_change_pct: float | None  # (b - a) / a × 100
    regression: str | None  # p95 latency
    error_regression: str | None = None  # error rate up
    retry_regression: str | None = None  # retry rate up

    @property
    def regressions(self) -> tuple[str, ...]:
        return tuple(r for r in (self.regression, self.error_regression, self.retry_regression) if r)

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "a": self.a.as_json() if self.a else None,
                "b": self.b.as_json() if self.b else None, "p95_change_pct": self.p95_change_pct,
                "regression": self.regression, "error_regression": self.error_regression,
                "retry_regression": self.retry_regression, "regressions": list(self.regressions)}


@dataclass(frozen=True, slots=True)
class DocumentDelta:
    """A document both runs ingested (same bytes, or the same path). Cosines are per chunk when both
    runs cut the same number of chunks, else between the documents' mean vectors; None when the
    runs' vectors are in different spaces (`note` says why)."""

    path: str
    chunks_a: int
    chunks_b: int
    space_a: str | None
    space_b: str | None
    cosine_mean: float | None
    cosine_min: float | None
    note: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "chunks_a": self.chunks_a, "chunks_b": self.chunks_b, "space_a": self.space_a,
                "space_b": self.space_b, "cosine_mean": self.cosine_mean, "cosine_min": self.cosine_min,
                "note": self.note}


@dataclass(frozen=True, slots=True)
class Recall:
    passed: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.total if self.total else None


@dataclass(frozen=True, slots=True)
class Comparison:
    a: RunSummary
    b: RunSummary
    threshold_pct: float
    stages: tuple[StageDelta, ...]
    documents: tuple[DocumentDelta, ...]
    recall_a: Recall
    recall_b: Recall
    regressions: tuple[str, ...]
    cost_tolerance_pct: float = COST_TOLERANCE_PCT

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a.as_json(), "b": self.b.as_json(), "threshold_pct": self.threshold_pct,
            "cost_tolerance_pct": self.cost_tolerance_pct,
            "stages": [s.as_json() for s in self.stages], "documents": [d.as_json() for d in self.documents],
            "retrieval_recall": {"a": self.recall_a.rate, "b": self.recall_b.rate,
                                 "a_passed": self.recall_a.passed, "a_total": self.recall_a.total,
                                 "b_passed": self.recall_b.passed, "b_total": self.recall_b.total},
            "regressions": list(self.regressions),
        }


def recall(result: Mapping[str, Any] | None) -> Recall:
    """Retrieval expectations that passed, from a stored run result (older results: by description)."""
    items = [e for e in (result or {}).get("expectations", [])
             if e.get("kind") == "retrieval" or (not e.get("kind") and str(e.get("description", "")).startswith(
                 "query "))]
    return Recall(sum(1 for e in items if e.get("passed")), len(items))


def _stage_delta(stage: str, a: StageMetrics | None, b: StageMetrics | None, threshold_pct: float) -> StageDelta:
    change = None
    regression = None
    if a and b and a.p95_ms is not None and b.p95_ms is not None:
        if a.p95_ms > 0:
            change = (b.p95_ms - a.p95_ms) / a.p95_ms * 100
        if b.p95_ms - a.p95_ms >= MIN_LATENCY_MS and (change is None or change > threshold_pct):
            pct = "" if change is None else f" (+{change:.0f}% > {threshold_pct:g}%)"
            regression = f"{stage}: p95 latency {a.p95_ms:.1f} ms → {b.p95_ms:.1f} ms{pct}"
    return StageDelta(stage, a, b, change, regression,
                      _rate_up(stage, "error rate", a.error_rate if a else None, b.error_rate if b else None, b,
                               "errors"),
                      _rate_up(stage, "retry rate", a.retry_rate if a else None, b.retry_rate if b else None, b,
                               "retries"))


def _rate_up(stage: str, what: str, a: float | None, b: float | None, mb: StageMetrics | None,
             field: str) -> str | None:
    """`embed: error rate 0.0% → 25.0% (1 of 4 attempts)` when B's rate is above A's (a stage A did
    not call counts as 0%)."""
    if b is None or mb is None or b <= (a or 0.0):
        return None
    count = getattr(mb, field)
    before = "–" if a is None else f"{a * 100:.1f}%"
    reused = f" + {mb.reused} reused {'document' if mb.reused == 1 else 'documents'}" if mb.reused else ""
    return f"{stage}: {what} {before} → {b * 100:.1f}% ({count} of {mb.attempts} attempts{reused})"


def _cosines(va: DocumentVectors, vb: DocumentVectors) -> tuple[float, float, str]:
    import numpy as np

    a = va.matrix.astype(np.float64)
    b = vb.matrix.astype(np.float64)
    if a.shape == b.shape:
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cos = np.einsum("ij,ij->i", a, b) / np.where(norms == 0, np.nan, norms)
        return float(np.nanmean(cos)), float(np.nanmin(cos)), "per chunk"
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    value = float(ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb)))
    return value, value, f"mean vectors ({a.shape[0]} vs {b.shape[0]} chunks)"


def _pairs(da: Sequence[DocumentRecord], db: Sequence[DocumentRecord]) -> list[tuple[DocumentRecord, DocumentRecord]]:
    by_sha = {d.sha256: d for d in db if d.sha256}
    by_path = {d.path: d for d in db}
    out = []
    for d in da:
        other = by_sha.get(d.sha256) if d.sha256 else None
        if other is None:
            other = by_path.get(d.path)
        if other is not None:
            out.append((d, other))
    return out


def _document_delta(a: DocumentRecord, b: DocumentRecord, va: DocumentVectors | None,
                    vb: DocumentVectors | None) -> DocumentDelta:
    space_a, space_b = (va.space if va else None), (vb.space if vb else None)
    mean = low = None
    if va is None or vb is None:
        note = "no vectors in " + ("both runs" if va is vb else ("A" if va is None else "B"))
    elif space_a != space_b or space_a.startswith("unknown"):  # type: ignore[union-attr]
        note = f"different spaces ({space_a} vs {space_b}): not comparable"
    else:
        mean, low, note = _cosines(va, vb)
    return DocumentDelta(a.path, a.chunks, b.chunks, space_a, space_b, mean, low, note)


def _cost_up(a: float | None, b: float | None, tolerance_pct: float) -> str | None:
    """`cost at live prices up: $0.0075 → $0.0080 (+6.67% > 1%)` when B costs more than A by more than
    `tolerance_pct` percent of A (compared in the ledger's nano-dollars, so float noise is no increase)."""
    if a is None or b is None:
        return None
    na, nb = round(a * 1e9), round(b * 1e9)
    if nb - na <= na * tolerance_pct / 100:
        return None
    before, after = format_usd_pair(a, b)
    change = f" (+{(nb - na) / na * 100:.3g}% > {tolerance_pct:g}%)" if na else ""
    return f"cost at live prices up: {before} → {after}{change}"


def compare_runs(store: RunStore, run_a: str, run_b: str, *, threshold_pct: float = 20.0,
                 cost_tolerance_pct: float = COST_TOLERANCE_PCT) -> Comparison:
    """Compare run B against run A (ids or prefixes). Raises RunNotFound / AmbiguousRunId."""
    ids = store.resolve(run_a), store.resolve(run_b)
    summaries = [store.summary(i) for i in ids]
    docs = [store.documents(i) for i in ids]
    metrics = [{m.stage: m for m in stage_metrics(d, store.calls(i))} for i, d in zip(ids, docs, strict=True)]
    order = list(metrics[0]) + [s for s in metrics[1] if s not in metrics[0]]
    stages = tuple(_stage_delta(s, metrics[0].get(s), metrics[1].get(s), threshold_pct) for s in order)
    vectors = [store.vectors(i, d) for i, d in zip(ids, docs, strict=True)]
    documents = tuple(_document_delta(x, y, vectors[0].get(x.job_id), vectors[1].get(y.job_id))
                      for x, y in _pairs(docs[0], docs[1]))
    recalls = [recall(store.result(i)) for i in ids]
    regressions = [r for s in stages for r in s.regressions]
    a, b = summaries
    if cost := _cost_up(a.would_cost_usd, b.would_cost_usd, cost_tolerance_pct):
        regressions.append(cost)
    ra, rb = recalls[0].rate, recalls[1].rate
    if ra is not None and rb is not None and rb < ra:
        regressions.append(f"retrieval recall down: {recalls[0].passed}/{recalls[0].total} → "
                           f"{recalls[1].passed}/{recalls[1].total}")
    return Comparison(a, b, threshold_pct, stages, documents, recalls[0], recalls[1], tuple(regressions),
                      cost_tolerance_pct)

