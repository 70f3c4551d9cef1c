"""Everything that happened to one job (by correlation ID) or one run, across stages, in time order:
job events and service calls merged into one list of log entries, with free text redacted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from tvdb.history.store import CallRecord, EventRecord, RunStore
from tvdb.ledger.prices import nusd_to_usd
from tvdb.redaction import redact


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of `tvdb logs`. `kind`: event (a job state change or note) | call (a request attempt)."""

    ts: str
    kind: str
    run_id: str | None
    correlation_id: str | None
    job_id: str | None
    stage: str | None
    message: str
    fields: Mapping[str, Any]
    # the job's document as the run's table names it (None for a run-level line: a batch of several jobs)
    document: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "kind": self.kind, "run_id": self.run_id, "correlation_id": self.correlation_id,
                "job_id": self.job_id, "document": self.document, "stage": self.stage, "message": self.message,
                **self.fields}


def _event(e: EventRecord, secrets: Iterable[str | None]) -> LogEntry:
    detail = redact(e.detail, secrets) if e.detail else None
    return LogEntry(e.ts, "event", e.run_id, e.correlation_id, e.job_id, None,
                    e.transition + (f": {detail}" if detail else ""),
                    {"from_state": e.from_state, "to_state": e.to_state, "detail": detail})


def _call(c: CallRecord, correlation: Mapping[str, str], secrets: Iterable[str | None],
          job_id: str | None = None) -> LogEntry:
    """`job_id`: the job whose timeline this is (a batched request that served it belongs to it)."""
    cid = c.correlation_id or (correlation.get(c.job_ids[0]) if len(c.job_ids) == 1 else None)
    if job_id is not None:
        cid = correlation.get(job_id, cid)
    outcome = "ok" if c.ok else f"error {c.error_code or ''}".strip() + (f" (HTTP {c.http_status})" if c.http_status
                                                                        else "")
    cost = "unknown" if c.would_cost_nusd is None else _usd(nusd_to_usd(c.would_cost_nusd))
    latency = "" if c.latency_ms is None else f" in {c.latency_ms:.0f} ms"
    message = (f"{c.service} {c.implementation} {c.model} attempt {c.attempt}: {outcome}{latency}, "
               f"{_amount(c.units, c.unit)}, would cost {cost}")
    fields = {
        "service": c.service, "implementation": c.implementation,
        "provenance": redact(c.provenance, secrets) if c.provenance else None, "model": c.model,
        "attempt": c.attempt, "status": c.status, "error_code": c.error_code, "http_status": c.http_status,
        "latency_ms": c.latency_ms, "units": c.units, "unit": c.unit, "credits": c.credits,
        "cost_usd": None if c.cost_nusd is None else nusd_to_usd(c.cost_nusd),
        "would_cost_usd": None if c.would_cost_nusd is None else nusd_to_usd(c.would_cost_nusd),
        "request_id": c.request_id, "job_ids": list(c.job_ids),
    }
    own = job_id if job_id is not None else (c.job_ids[0] if len(c.job_ids) == 1 else None)
    return LogEntry(c.ts, "call", c.run_id, cid, own, c.stage, message, fields)


def timeline(store: RunStore, *, run: str | None = None, correlation_id: str | None = None,
             secrets: Iterable[str | None] = ()) -> list[LogEntry]:
    """The entries of one run (id or prefix) or one job (correlation ID or prefix), oldest first.

    Raises RunNotFound / AmbiguousRunId. `secrets` (configured keys) are masked in every free-text
    field, besides anything key-shaped."""
    secrets = list(secrets)
    job_id: str | None = None
    if correlation_id is not None:
        run_id, job_id = store.job_for_correlation(correlation_id)
        every = store.documents(run_id)
        docs = [d for d in every if d.job_id == job_id]
        events = store.events(correlation_id=docs[0].correlation_id)
        calls = store.calls_for_job(job_id)
    else:
        run_id = store.resolve(run or "")
        every = docs = store.documents(run_id)
        events = store.events(run_id=run_id)
        calls = store.calls(run_id)
    correlation = {d.job_id: d.correlation_id for d in docs}
    names = document_names({d.job_id: d.path for d in every})  # names repeat or not across the whole run
    entries = [_event(e, secrets) for e in events] + [_call(c, correlation, secrets, job_id) for c in calls]
    entries = [replace(e, document=names.get(e.job_id or "")) for e in entries]
    return sorted(entries, key=lambda e: (e.ts, 0 if e.kind == "event" else 1))


def document_names(paths: Mapping[str, str]) -> dict[str, str]:
    """job id → its document as the run's table names it: the file name, or, when names repeat in the
    run, the path under the documents' common folder (the run's table: under the scenario's)."""
    import os

    names = {job: PurePath(p).name for job, p in paths.items()}
    if len(set(names.values())) == len(names):
        return names
    common = os.path.commonpath([str(PurePath(p).parent) for p in paths.values()])
    return {job: os.path.relpath(p, common) for job, p in paths.items()}


def _amount(units: float, unit: str) -> str:
    """`1 page`, `3 pages`, `751 tokens`: the ledger stores the unit in the plural."""
    return f"{units:g} {unit[:-1] if units == 1 and unit.endswith('s') else unit}"


def _usd(amount: float) -> str:
    """Every digit a nano-dollar ledger holds, without trailing zeros: `$0.00125`, `$0` (never `$0.`)."""
    return "$" + (f"{amount:.9f}".rstrip("0").rstrip(".") or "0")
