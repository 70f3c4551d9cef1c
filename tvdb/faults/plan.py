"""The one fault plan format: a scenario's `faults:` list and `tvdb emulate --config FILE` both use it.

    faults:
      - {service: openai, kind: status, status: 429, retry_after: 1, nth: 1}
      - {service: openai, kind: status, status: 429, type: insufficient_quota, nth: [3, 4]}
      - {service: openai, kind: latency, latency_s: 0.2, rate: 0.1}
      - {service: llamaparse, kind: timeout, times: 1}
      - {service: llamaparse, kind: status, status: 503, request: poll, nth: 2}
      - {service: llamaparse, kind: stuck, nth: 2}          # the job stays PENDING forever
      - {service: llamaparse, kind: job_failed, message: "PDF_IS_PROTECTED: password required"}
      - {service: llamaparse, kind: partial, pages: 1}      # the first page fails

`nth` counts the calls to that service (1-based, in the order they start); `rate` fires with that
probability from a seeded RNG (deterministic for a given plan and call order); with neither, the fault
fires on every call. `times` caps how often a fault fires. A `latency` fault delays the call and
combines with at most one other fault; of the others the first that fires decides the outcome.

Only calls that are made count: documents a run reuses from an earlier one make none, so a scenario
whose faults must hit document calls says `reuse: false` (tvdb.scenarios.schema).

LlamaParse calls are its uploads (one per document, as in mock mode); `request: poll` makes a fault count
and hit the job-status requests instead. The job kinds act on the job an upload creates:
`stuck` (PENDING forever), `job_failed` (FAILED with `message`), `partial` (`pages` pages fail).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from tvdb.bounds import MAX_COUNT, MAX_SEED, MAX_WAIT_S
from tvdb.validation import CrossFieldError, StrictModel

Service = Literal["openai", "llamaparse"]
FaultKind = Literal[
    "status", "latency", "timeout", "disconnect", "malformed_body", "bad_vector", "stuck", "job_failed", "partial",
]
Channel = Literal["call", "poll"]
JOB_KINDS = frozenset({"stuck", "job_failed", "partial"})


class Fault(StrictModel):
    """One fault. `status`, `code`/`type` and `retry_after` (seconds) shape an error response."""

    service: Service
    kind: FaultKind
    # bounds checked in _consistent: a union of constrained types gives confusing messages
    nth: int | list[int] | None = Field(None, description="1-based call number(s) it fires on")
    rate: float | None = Field(None, ge=0, le=1, description="probability per call (seeded RNG)")
    status: int | None = Field(None, ge=400, le=599)
    code: str | None = None
    type: str | None = None
    message: str | None = None
    retry_after: float | None = Field(None, ge=0, le=MAX_WAIT_S)
    latency_s: float | None = Field(None, ge=0, le=MAX_WAIT_S)
    times: int | None = Field(None, ge=1, le=MAX_COUNT, description="fire at most this many times")
    vector: Literal["nan", "wrong_dimension"] = "nan"
    request: Channel = Field("call", description="llamaparse: `call` counts uploads, `poll` job-status requests")
    pages: int = Field(1, ge=1, le=1_000_000, description="partial: how many pages fail (the first ones)")

    @model_validator(mode="after")
    def _consistent(self) -> Fault:
        # each check names the keys it reads, so that it is still judged (tvdb.validation.all_errors)
        # when another key of the fault is wrong, and is not when one of its own keys is
        if self.nth is not None and self.rate is not None:
            # only `rate` is dropped for the next pass, so `nth`'s own checks below still judge its value
            # (`nth: 0` beside `rate` is two problems); this check reads nth only for being stated
            raise CrossFieldError("give either `nth` or `rate`, not both", keys=("rate",))
        nths = self.nth_set
        if any(n < 1 for n in nths):
            raise CrossFieldError("`nth` counts calls from 1", keys=("nth",))
        if any(n > MAX_COUNT for n in nths):
            raise CrossFieldError(f"`nth` must be at most {MAX_COUNT:,}", keys=("nth",))
        if self.kind == "status" and self.status is None:
            raise CrossFieldError("a `status` fault needs `status` (e.g. 429, 500)", keys=("kind", "status"))
        if self.kind == "latency" and self.latency_s is None:
            raise CrossFieldError("a `latency` fault needs `latency_s`", keys=("kind", "latency_s"))
        if self.kind == "bad_vector" and self.service != "openai":
            raise CrossFieldError("`bad_vector` applies to the openai (embedding) service only",
                                  keys=("kind", "service"))
        if self.kind in JOB_KINDS and self.service != "llamaparse":
            raise CrossFieldError(f"`{self.kind}` applies to the llamaparse (parse job) service only",
                                  keys=("kind", "service"))
        if self.request == "poll" and (self.service != "llamaparse" or self.kind in JOB_KINDS):
            raise CrossFieldError("`request: poll` applies to llamaparse request faults (status, timeout, ...) only",
                                  keys=("request", "service", "kind"))
        return self

    @property
    def nth_set(self) -> frozenset[int]:
        if self.nth is None:
            return frozenset()
        return frozenset([self.nth] if isinstance(self.nth, int) else self.nth)


class FaultPlan(StrictModel):
    """A list of faults plus the seed of the RNG that `rate` faults draw from."""

    faults: list[Fault] = []
    seed: int = Field(0, ge=0, le=MAX_SEED)

    @classmethod
    def of(cls, faults: list[Fault] | list[dict[str, object]] | None, *, seed: int = 0) -> FaultPlan:
        """Build from a scenario's `faults:` list (dicts or `Fault`s); raises pydantic ValidationError."""
        return cls.model_validate({"faults": list(faults or []), "seed": seed})

    def schedule(self) -> FaultSchedule:
        return FaultSchedule(self)


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one call: extra latency, and at most one failure (None: the call goes through)."""

    call: int
    latency_s: float = 0.0
    fault: Fault | None = None

    @property
    def clean(self) -> bool:
        return self.fault is None and self.latency_s == 0


class FaultSchedule:
    """The running state of a plan: calls per service, firings per fault, the seeded RNGs.

    Thread-safe (the emulator serves requests from several threads). One schedule per run or server.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._fired = [0] * len(plan.faults)
        # one RNG per fault so that adding a fault does not change when the others fire
        self._rngs = [random.Random(f"{plan.seed}:{i}") for i in range(len(plan.faults))]

    def calls(self, service: str) -> int:
        with self._lock:
            return self._calls.get(service, 0)

    @property
    def fired(self) -> tuple[int, ...]:
        """How many times each fault of the plan has fired, in plan order."""
        with self._lock:
            return tuple(self._fired)

    def next(self, service: str, channel: Channel = "call") -> Decision:
        """Count one call to `service` on `channel` (`poll`: a job-status request) and decide its faults."""
        key = service if channel == "call" else f"{service}:{channel}"
        with self._lock:
            n = self._calls.get(key, 0) + 1
            self._calls[key] = n
            latency = 0.0
            outcome: Fault | None = None
            for i, fault in enumerate(self.plan.faults):
                if fault.service != service or fault.request != channel:
                    continue
                if fault.times is not None and self._fired[i] >= fault.times:
                    continue
                if fault.nth is not None:
                    hit = n in fault.nth_set
                elif fault.rate is not None:
                    hit = self._rngs[i].random() < fault.rate
                else:
                    hit = True
                if not hit:
                    continue
                if fault.kind == "latency":
                    latency += fault.latency_s or 0.0
                elif outcome is None:
                    outcome = fault
                else:
                    continue  # a second failure on the same call does not fire
                self._fired[i] += 1
            return Decision(n, latency, outcome)
