"""What a run produced, as plain values: per-document outcomes, expectation verdicts, money.

`RunResult.as_json()` is the `tvdb run --json` contract; its keys are stable (more may be added):
run_id, scenario, mode, passed, cost_usd, would_cost_usd, ingestion_would_cost_usd, reused_documents,
reused_would_cost_usd, documents_would_cost_usd (what `max_cost_usd` bounds), documents[{path (as the
scenario names it), absolute_path, status, error_code, pages, chunks, tokens, warnings, …}],
expectations[{description, passed, …}], provenance[{stage, implementation, reason, calls, errors}], fallbacks,
spaces[{implementation, model, dimensions, vectors}].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tvdb.domain import EmbeddingSpace, Implementation
from tvdb.errors import EXIT_BUDGET, EXIT_EXPECTATION_FAILED, EXIT_INTERRUPTED, EXIT_OK, ErrorCode
from tvdb.ledger.prices import nusd_to_usd
from tvdb.ledger.provenance import ProvenanceRow
from tvdb.scenarios.patterns import as_named


@dataclass(frozen=True, slots=True)
class DocumentResult:
    path: str
    job_id: str
    correlation_id: str
    status: str  # complete | failed | deferred | (an in-progress state if interrupted)
    error_code: str | None
    error_message: str | None
    media_type: str | None
    pages: int
    chunks: int
    tokens: int
    vectors: int
    would_cost_usd: float | None  # parse cost + this document's share of the embedding requests
    reused_from: str | None
    stage_ms: Mapping[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # parse warnings of a document that completed anyway (a page not parsed)
    # a `pipeline:` hook's exception, formatted and redacted (error_code pipeline_error)
    traceback: str | None = None

    def as_json(self, base: Path | None = None) -> dict[str, Any]:
        """`path` as the scenario names it when its folder `base` is known (the form of the run's table and
        the expectations); `absolute_path` is where the file was read, for a consumer that opens it."""
        return {
            "path": self.path if base is None else as_named(self.path, base), "absolute_path": self.path,
            "status": self.status, "error_code": self.error_code,
            "error_message": self.error_message, "pages": self.pages, "chunks": self.chunks,
            "tokens": self.tokens, "vectors": self.vectors, "media_type": self.media_type,
            "would_cost_usd": self.would_cost_usd, "reused_from": self.reused_from,
            "job_id": self.job_id, "correlation_id": self.correlation_id, "stage_ms": dict(self.stage_ms),
            "warnings": list(self.warnings),
            **({"traceback": self.traceback} if self.traceback else {}),
        }


@dataclass(frozen=True, slots=True)
class ExpectationResult:
    description: str
    passed: bool
    detail: str = ""
    kind: str = ""  # "retrieval" for retrieval expectations (run comparisons measure their recall)

    def as_json(self) -> dict[str, Any]:
        return {"description": self.description, "passed": self.passed, "detail": self.detail, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Money of a run. USD floats computed from exact nano-dollar sums; None when a price is unknown."""

    cost_usd: float
    would_cost_usd: float | None
    unpriced_calls: int
    requests: Mapping[str, int]  # "<stage>/<implementation>" → request attempts
    # documents this run reused instead of ingesting, and what their ingestion cost when it was done
    reused_documents: int = 0
    reused_would_cost_usd: float | None = 0.0
    # this run's ingestion calls alone, before the retrieval queries ran (the Spent line's first figure)
    ingestion_would_cost_usd: float | None = None

    @property
    def query_would_cost_usd(self) -> float | None:
        """What the retrieval queries would cost at live prices: the rest of `would_cost_usd`."""
        if self.would_cost_usd is None or self.ingestion_would_cost_usd is None:
            return None
        return nusd_to_usd(round(self.would_cost_usd * 1e9) - round(self.ingestion_would_cost_usd * 1e9))

    @property
    def documents_would_cost_usd(self) -> float | None:
        """What ingesting all of the run's documents would cost at live prices: this run's ingestion
        calls plus the reused documents' ingestion as measured when it was done. `max_cost_usd` bounds
        this figure, so its verdict does not depend on what the data dir already held."""
        if self.ingestion_would_cost_usd is None or self.reused_would_cost_usd is None:
            return None
        return nusd_to_usd(round(self.ingestion_would_cost_usd * 1e9) + round(self.reused_would_cost_usd * 1e9))


@dataclass(frozen=True)
class RunResult:
    run_id: str
    scenario: str
    mode: str
    status: str  # finished | interrupted
    documents: tuple[DocumentResult, ...]
    expectations: tuple[ExpectationResult, ...]
    usage: UsageSummary
    provenance: tuple[ProvenanceRow, ...] = ()  # per stage: implementation, reason, calls
    fallbacks: int = 0  # calls of hybrid services that ran local
    spaces: tuple[tuple[EmbeddingSpace, int], ...] = ()  # vectors of the run's documents per space
    notes: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()  # alerts this run raised (budget thresholds, error rates), one line each
    # a recording or replay run: cassette, record_mode, replayed_calls + avoided_usd (or recorded_*)
    tape: Mapping[str, Any] | None = None
    # a scenario that ran the user's own code: its `pipeline:` hook spec (chunks and vectors are the user's)
    pipeline: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "finished" and all(e.passed for e in self.expectations)

    @property
    def budget_refused(self) -> bool:
        return any(d.error_code == ErrorCode.BUDGET for d in self.documents)

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        if self.budget_refused:
            return EXIT_BUDGET
        return EXIT_OK if self.passed else EXIT_EXPECTATION_FAILED

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunResult:
        """The result `as_json` stored (runs.result_json), read back."""
        docs = tuple(DocumentResult(
            # a stored result holds the absolute path under `path`; a `--json` one under `absolute_path`
            path=d.get("absolute_path", d["path"]), job_id=d["job_id"],
            correlation_id=d["correlation_id"], status=d["status"],
            error_code=d["error_code"], error_message=d.get("error_message"), media_type=d.get("media_type"),
            pages=d["pages"], chunks=d["chunks"], tokens=d["tokens"], vectors=d["vectors"],
            would_cost_usd=d["would_cost_usd"], reused_from=d.get("reused_from"), stage_ms=d.get("stage_ms") or {},
            warnings=tuple(d.get("warnings") or ()),
            traceback=d.get("traceback"),
        ) for d in data["documents"])
        usage = UsageSummary(data["cost_usd"], data["would_cost_usd"], data.get("unpriced_calls", 0),
                             data.get("requests") or {}, reused_documents=data.get("reused_documents", 0),
                             reused_would_cost_usd=data.get("reused_would_cost_usd", 0.0),
                             ingestion_would_cost_usd=data.get("ingestion_would_cost_usd"))
        return cls(
            run_id=data["run_id"], scenario=data["scenario"], mode=data["mode"], status=data["status"],
            documents=docs, expectations=tuple(ExpectationResult(e["description"], e["passed"], e.get("detail", ""))
                                               for e in data["expectations"]),
            usage=usage, provenance=tuple(ProvenanceRow(**p) for p in data.get("provenance") or ()),
            fallbacks=data.get("fallbacks", 0),
            spaces=tuple((EmbeddingSpace(Implementation(sp["implementation"]), sp["model"], sp["dimensions"]),
                          sp["vectors"]) for sp in data.get("spaces") or ()),
            notes=tuple(data.get("notes") or ()),
            alerts=tuple(data.get("alerts") or ()),
            pipeline=data.get("pipeline"),
        )

    def as_json(self, base: Path | None = None) -> dict[str, Any]:
        """The `--json` contract; `base`, the scenario's folder, names documents as the scenario does."""
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "mode": self.mode,
            "status": self.status,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "cost_usd": self.usage.cost_usd,
            "would_cost_usd": self.usage.would_cost_usd,
            "ingestion_would_cost_usd": self.usage.ingestion_would_cost_usd,
            "reused_documents": self.usage.reused_documents,
            "reused_would_cost_usd": self.usage.reused_would_cost_usd,
            "documents_would_cost_usd": self.usage.documents_would_cost_usd,
            "unpriced_calls": self.usage.unpriced_calls,
            "requests": dict(self.usage.requests),
            "provenance": [p.as_json() for p in self.provenance],
            "fallbacks": self.fallbacks,
            "spaces": [{"implementation": str(sp.implementation), "model": sp.model, "dimensions": sp.dimensions,
                        "vectors": n} for sp, n in self.spaces],
            "documents": [d.as_json(base) for d in self.documents],
            "expectations": [e.as_json() for e in self.expectations],
            "notes": list(self.notes),
            "alerts": list(self.alerts),
            **({"pipeline": self.pipeline} if self.pipeline else {}),
            **({"replay" if self.tape.get("record_mode") == "none" else "recording": dict(self.tape)}
               if self.tape else {}),
        }
