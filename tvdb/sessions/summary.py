"""What a session did, read back from the ledger: `SessionSummary` and `expect()`.

Every number comes from the session's usage rows (`run_id` = the session's), so it is what
`tvdb cost` reports too. Money in USD (floats rounded from integer nano-dollars); None = unknown price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, cast

from tvdb.errors import ConfigError
from tvdb.ledger.prices import nusd_to_usd
from tvdb.scenarios.results import ExpectationResult
from tvdb.storage.base import Database


@dataclass(frozen=True, slots=True)
class CallSummary:
    """The requests of one (service, implementation): `service` "openai" | "llamaparse",
    `implementation` "mock" | "real" | "replay"; `requests` counts every request (errors too),
    `tokens` the billed tokens of successful embeddings, `pages` / `credits` LlamaParse's billed pages
    and credits; `spent_usd` real money, `would_cost_usd` at live prices (None: a price is unknown)."""

    service: str
    implementation: str
    requests: int
    errors: int
    tokens: int
    pages: float
    credits: float | None
    spent_usd: float | None
    would_cost_usd: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A session's ledger: `calls` per (service, implementation), `fallbacks` (hybrid calls that ran
    mock), `replayed` (calls answered from a cassette), and the totals `spent_usd` (real money) and
    `would_cost_usd` (everything at live prices). Parse jobs still running are billed when their final
    status is read, or at the session's end (`pending_jobs` counts them)."""

    run_id: str
    calls: tuple[CallSummary, ...]
    fallbacks: int
    replayed: int
    spent_usd: float | None
    would_cost_usd: float | None
    pending_jobs: int = 0

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.calls)

    def call(self, service: str, implementation: str) -> CallSummary | None:
        """The entry of `service` served by `implementation`, or None when there was none."""
        return next((c for c in self.calls if (c.service, c.implementation) == (service, implementation)), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: {"run_id", "calls": [CallSummary.as_dict()...], "fallbacks", "replayed",
        "spent_usd", "would_cost_usd", "pending_jobs", "requests"}."""
        out = {k: v for k, v in asdict(self).items() if k != "calls"}
        return {**out, "calls": [c.as_dict() for c in self.calls], "requests": self.requests}


def _usd(nusd: int | None) -> float | None:
    return None if nusd is None else nusd_to_usd(nusd)


def _total(values: Sequence[int | None]) -> float | None:
    return None if any(v is None for v in values) else nusd_to_usd(sum(v for v in values if v is not None))


def build_summary(db: Database, run_id: str, hybrid_stages: Sequence[str],
                  pending_jobs: int = 0) -> SessionSummary:
    from tvdb.ledger.provenance import count_local_calls
    from tvdb.ledger.usage_store import UsageStore

    groups = UsageStore(db).by_implementation(run_id)
    calls = tuple(CallSummary(g["service"], g["implementation"], g["requests"], g["errors"], g["tokens"],
                              g["pages"], g["credits"], _usd(g["cost_nusd"]), _usd(g["would_cost_nusd"]))
                  for g in groups)
    return SessionSummary(
        run_id=run_id, calls=calls, fallbacks=count_local_calls(db, run_id, list(hybrid_stages)),
        replayed=sum(c.requests - c.errors for c in calls if c.implementation == "replay"),
        spent_usd=_total([g["cost_nusd"] for g in groups]),
        would_cost_usd=_total([g["would_cost_nusd"] for g in groups]), pending_jobs=pending_jobs)


class ExpectationFailed(AssertionError):
    """`Session.expect()` found misses; `results` holds every verdict (`.passed`, `.description`, `.detail`)."""

    def __init__(self, run_id: str, results: Sequence[ExpectationResult]) -> None:
        self.results = tuple(results)
        misses = [r for r in results if not r.passed]
        lines = [f"tvdb session {run_id}: {len(misses)} of {len(results)} expectations failed:"]
        lines += [f"  ✗ {r.description}: {r.detail}" for r in misses]
        super().__init__("\n".join(lines))




def evaluate(db: Database, run_id: str, modes: Mapping[str, Any], summary: SessionSummary, *,
             max_cost_usd: float | None, max_spent_usd: float | None, requests: Sequence[Mapping[str, Any]],
             provenance: Mapping[str, Any] | None) -> list[ExpectationResult]:
    """The verdicts of the scenario vocabulary's cost, request and provenance expectations over the
    session's rows (tvdb.scenarios.expectations), plus `max_spent_usd` (real money). Raises ConfigError
    for an expectation that does not validate."""
    from pydantic import ValidationError

    from tvdb.money import format_usd
    from tvdb.scenarios.expectations import _provenance, _requests
    from tvdb.scenarios.schema import Expectations
    from tvdb.validation import describe, dotted

    raw: dict[str, Any] = {"requests": list(requests)}
    if max_cost_usd is not None:
        raw["max_cost_usd"] = max_cost_usd
    if provenance is not None:
        raw["provenance"] = dict(provenance)
    try:
        expectations = Expectations.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{dotted(e['loc'])}: {describe(e, Expectations)}" for e in exc.errors())
        raise ConfigError(f"Session.expect(): {problems}") from None
    # the scenario checks read only these from a run's context
    ctx = cast(Any, SimpleNamespace(db=db, run_id=run_id, router=SimpleNamespace(modes=modes)))
    out: list[ExpectationResult] = []
    if expectations.max_cost_usd is not None:
        cost, limit = summary.would_cost_usd, expectations.max_cost_usd
        out.append(ExpectationResult(f"session costs at most {format_usd(limit)} at live prices",
                                     cost is not None and cost <= limit,
                                     f"would cost {format_usd(cost)}" if cost is not None else "a price is unknown"))
    if max_spent_usd is not None:
        spent = summary.spent_usd
        out.append(ExpectationResult(f"session spends at most {format_usd(max_spent_usd)}",
                                     spent is not None and spent <= max_spent_usd,
                                     f"spent {format_usd(spent)}" if spent is not None else "a price is unknown"))
    out.extend(_requests(ctx, e) for e in expectations.requests)
    if expectations.provenance is not None:
        out.extend(_provenance(ctx, expectations.provenance))
    return out
