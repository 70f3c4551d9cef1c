"""One run in detail (`tvdb runs show`): its summary, per-stage metrics, and per document its stages
(time, calls, errors, cost) and its job event timeline by correlation ID."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tvdb.history.metrics import StageMetrics, stage_metrics
from tvdb.history.store import CallRecord, DocumentRecord, EventRecord, RunStore, RunSummary


@dataclass(frozen=True, slots=True)
class DocumentDetail:
    document: DocumentRecord
    stages: tuple[StageMetrics, ...]  # this document's time and the calls that served it
    events: tuple[EventRecord, ...]

    def as_json(self) -> dict[str, Any]:
        d = self.document
        return {
            "job_id": d.job_id, "path": d.path, "correlation_id": d.correlation_id, "status": d.state,
            "error_code": d.error_code, "error_message": d.error_message, "pages": d.pages, "chunks": d.chunks,
            "tokens": d.tokens, "reused_from": d.reused_from, "stage_ms": dict(d.stage_ms),
            "warnings": list(d.warnings),
            "stages": [s.as_json() for s in self.stages],
            "events": [{"ts": e.ts, "from_state": e.from_state, "to_state": e.to_state, "detail": e.detail}
                       for e in self.events],
        }


@dataclass(frozen=True, slots=True)
class RunDetail:
    summary: RunSummary
    stages: tuple[StageMetrics, ...]
    documents: tuple[DocumentDetail, ...]
    run_calls: tuple[CallRecord, ...]  # calls of no single document (retrieval queries)

    def as_json(self) -> dict[str, Any]:
        return {"run": self.summary.as_json(), "stages": [s.as_json() for s in self.stages],
                "documents": [d.as_json() for d in self.documents],
                "run_calls": len(self.run_calls)}


def run_detail(store: RunStore, run: str) -> RunDetail:
    """The run named by `run` (id or prefix). Raises RunNotFound / AmbiguousRunId."""
    run_id = store.resolve(run)
    documents = store.documents(run_id)
    calls = store.calls(run_id)
    events = store.events(run_id=run_id)
    tokens = {d.job_id: d.tokens or 0 for d in documents}
    per_doc = []
    for d in documents:
        mine = [share_of(c, d.job_id, tokens) for c in calls if d.job_id in c.job_ids]
        per_doc.append(DocumentDetail(d, tuple(stage_metrics([d], mine)),
                                      tuple(e for e in events if e.job_id == d.job_id)))
    return RunDetail(store.summary(run_id), tuple(stage_metrics(documents, calls)), tuple(per_doc),
                     tuple(c for c in calls if not c.job_ids))


def share_of(call: CallRecord, job_id: str, tokens: dict[str, int]) -> CallRecord:
    """`job_id`'s part of a call that served several documents (one batched embedding request): its
    units and money split by the documents' tokens (evenly when none are known), so a run's documents
    add up to the call instead of each showing all of it. Nano-USD shares are whole numbers that sum
    to the call's amount (the remainder goes to the call's last document)."""
    from dataclasses import replace

    if len(call.job_ids) < 2:
        return call
    weights = [tokens.get(j, 0) for j in call.job_ids]
    if not sum(weights):
        weights = [1] * len(call.job_ids)
    index = call.job_ids.index(job_id)

    def part(amount: int | None) -> int | None:
        if amount is None:
            return None
        parts = [amount * w // sum(weights) for w in weights]
        parts[-1] += amount - sum(parts)
        return parts[index]

    return replace(call, units=call.units * weights[index] / sum(weights), cost_nusd=part(call.cost_nusd),
                   would_cost_nusd=part(call.would_cost_nusd))


def recent_runs(store: RunStore, *, scenario: str | None = None, since: str | None = None,
                limit: int | None = None) -> list[RunSummary]:
    """Runs newest first; a `running` run whose process is gone (kill -9, a crash) is `interrupted`."""
    from dataclasses import replace

    from tvdb.owner import owner_alive

    runs = store.list_runs(scenario=scenario, since=since, limit=limit)
    owners = store.owners(r.run_id for r in runs if r.status == "running")
    return [replace(r, status="interrupted") if r.run_id in owners and owner_alive(owners[r.run_id]) is False
            else r for r in runs]
