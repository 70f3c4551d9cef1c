"""The drift canary (`tvdb cassette drift`): do the cassettes still tell the truth about the live services?

    cassettes ─► read_cassette (refuses what `tvdb cassette check` refuses) ─► per cassette:
      embeddings requests ─► deterministic sample (N, by sha256 of seed + request) ─┐
      everything else     ─► `skipped`, with the reason                              │
    all samples' estimates (tiktoken tokens of `input`) ≤ --max-usd, else refused ◄──┘ before any request
      ─► per sampled request: ServiceCaller.call (budget reserved; run budget = --max-usd, daily
         budget too) ─► POST <OPENAI_BASE_URL>/embeddings ─► usage row (provenance "drift canary",
         stage "drift", run id drift-…) settled at `usage.prompt_tokens`
      ─► tvdb.recording.compare: status, headers, schema, usage, cosine ─► ok | drifted | error

Why LlamaParse is skipped: an upload would re-parse (and pay for) the recorded file, which a
scrubbed cassette may not even hold, and a job's status/result request needs the job that upload
created; neither can be replayed on its own. Recorded transient answers (408, 409, 429, 5xx) are
skipped too: they describe a moment, not the contract.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tvdb.clock import Clock
from tvdb.domain import Implementation
from tvdb.errors import ConfigError, CostLimitExceeded, PermanentServiceError, ServiceError
from tvdb.ledger.prices import OPENAI
from tvdb.recording import compare
from tvdb.recording.store import CassetteFile, decode_body, json_body, read_cassette
from tvdb.sessions.routes import OPENAI_DEFAULT
from tvdb.sessions.wire import Wire

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.http import AsyncBaseTransport

PROVENANCE = "drift canary"
STAGE = "drift"
_TRANSIENT = frozenset({408, 409, 429})
SKIP_UPLOAD = ("LlamaParse upload: re-parsing the recorded file would cost credits and a scrubbed cassette may not "
               "hold the file; not replayed")
SKIP_JOB = "LlamaParse job request: needs the job its recorded upload created; not replayable on its own"
SKIP_OTHER = "not an OpenAI embeddings request; the drift check replays those only"


@dataclass(frozen=True, slots=True)
class DriftOptions:
    """`sample`: requests per cassette; `max_usd`: cap for the whole check (None: the run budget
    `budget.max_usd` applies); `min_cosine`: lowest acceptable cosine; `seed`: picks another sample."""

    sample: int = 3
    max_usd: float | None = None
    min_cosine: float = 0.999
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Planned:
    cassette: Path
    index: int  # 1-based, as `tvdb cassette show` and miss messages count
    request: dict[str, Any]
    response: dict[str, Any]
    skip: str | None = None

    def skipped(self, reason: str) -> Outcome:
        """This interaction's verdict when it is not sent, with the recorded status."""
        return Outcome(str(self.cassette), self.index, describe(self.request),
                       str(self.response["status"]["code"]), "skipped", (reason,))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One interaction's verdict: `result` is ok | drifted | skipped | error; `status` "200 → 200"."""

    cassette: str
    index: int
    request: str
    status: str
    result: str
    reasons: tuple[str, ...] = ()
    cosine: float | None = None
    spent_usd: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"cassette": self.cassette, "index": self.index, "request": self.request, "status": self.status,
                "result": self.result, "reasons": list(self.reasons), "cosine": self.cosine,
                "spent_usd": self.spent_usd}


@dataclass
class DriftReport:
    run_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    cassettes: list[dict[str, Any]] = field(default_factory=list)
    spent_nusd: int = 0
    refused: CostLimitExceeded | None = None  # a budget refused a request mid-way (the rest not sent)

    @property
    def drifted(self) -> bool:
        return any(o.result in ("drifted", "error") for o in self.outcomes)

    def totals(self) -> dict[str, int]:
        counts = {"ok": 0, "drifted": 0, "skipped": 0, "error": 0}
        for o in self.outcomes:
            counts[o.result] += 1
        return {"interactions": len(self.outcomes), **counts}

    def as_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "cassettes": self.cassettes,
                "interactions": [o.as_json() for o in self.outcomes], "totals": self.totals(),
                "spent_usd": self.spent_nusd / 1e9,
                "refused": str(self.refused) if self.refused is not None else None}


def _path_of(request: dict[str, Any]) -> str:
    return urlsplit(str(request["uri"])).path


def describe(request: dict[str, Any]) -> str:
    """`POST /v1/embeddings`: method and path, never the query (it may carry a token)."""
    return f"{request['method']} {_path_of(request)}"


def skip_reason(request: dict[str, Any], response: dict[str, Any]) -> str | None:
    """Why an interaction cannot be replayed, or None for a replayable embeddings request."""
    method, path = str(request["method"]).upper(), _path_of(request)
    if method == "POST" and path.rstrip("/").endswith("/embeddings"):
        code = response["status"]["code"]
        if code in _TRANSIENT or code >= 500:
            return f"recorded a transient {code}: a moment, not the contract"
        return None
    if "/api/" in path and any(part in path for part in ("/parse", "/parsing/", "/files")):  # v2 and v1
        return SKIP_UPLOAD if method == "POST" and path.rstrip("/").endswith(("/upload", "/parse", "/files")) \
            else SKIP_JOB
    return SKIP_OTHER


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, dict):
        body = body.get("string")
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body) if isinstance(body, bytes | bytearray) else b""


def sample_of(cassette: CassetteFile, n: int, seed: int) -> list[Planned]:
    """Every interaction to report: the skipped ones and `n` replayable ones, chosen by the sha256 of
    (seed, method, path, body), so the same cassette gives the same sample every night."""
    planned, candidates = [], []
    for i, item in enumerate(cassette.interactions, start=1):
        request, response = item["request"], item["response"]
        reason = skip_reason(request, response)
        if reason is not None:
            planned.append(Planned(cassette.path, i, request, response, reason))
        else:
            digest = hashlib.sha256(f"{seed}\0{describe(request)}\0".encode() + _body_bytes(request.get("body")))
            candidates.append((digest.hexdigest(), i, request, response))
    chosen = sorted(candidates)[:n]
    planned += [Planned(cassette.path, i, req, resp) for _, i, req, resp in chosen]
    return sorted(planned, key=lambda p: p.index)


def _once(paths: Sequence[Path]) -> list[Path]:
    """`paths` in order, a cassette named twice (a glob and ./its/path) once."""
    seen: dict[Path, Path] = {}
    for path in paths:
        seen.setdefault(path.resolve(), path)
    return list(seen.values())


def load_cassettes(paths: Sequence[Path]) -> list[CassetteFile]:
    """Every cassette loaded before anything is sent: one hostile or broken file refuses the check."""
    return [read_cassette(p) for p in paths]


def recorded_wire(response: dict[str, Any]) -> Wire:
    decoded = decode_body(dict(response))
    headers = compare.header_names(decoded.get("headers") or {})
    return Wire(int(decoded["status"]["code"]), tuple(headers.items()), _body_bytes(decoded.get("body")))


def judge(planned: Planned, live: Wire, min_cosine: float, spent_nusd: int = 0) -> Outcome:
    """Compare `live` with the recorded answer of `planned`."""
    recorded = recorded_wire(planned.response)
    reasons: list[str] = []
    if recorded.status != live.status:
        reasons.append(f"status {recorded.status} → {live.status}")
    reasons += compare.header_reasons(dict(recorded.headers), compare.header_names(live.headers))
    old, new = json_body(recorded.body), json_body(live.body)
    if old is not None and new is None:
        reasons.append("the body is no longer JSON")
    reasons += compare.schema_reasons(old, new) if new is not None and old is not None else []
    reasons += compare.usage_reasons(old, new)
    vector_reasons, lowest = compare.vector_reasons(old, new, min_cosine)
    reasons += vector_reasons
    return Outcome(str(planned.cassette), planned.index, describe(planned.request),
                   f"{recorded.status} → {live.status}", "drifted" if reasons else "ok", tuple(reasons), lowest,
                   spent_nusd / 1e9)


class _Answered(PermanentServiceError):
    """A non-2xx live answer: recorded in the ledger as a failed call (not billed), compared all the same."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        super().__init__(f"openai answered {wire.status}", service=OPENAI, status=wire.status,
                         request_id=wire.header("x-request-id"), maybe_billed=False)


def cap_of(options: DriftOptions, settings: Settings) -> tuple[float | None, str]:
    """The check's cap in USD and its name: --max-usd, else the run budget `budget.max_usd` (None: no cap
    of its own; the daily budget still applies per request)."""
    if options.max_usd is not None:
        return options.max_usd, "drift check (--max-usd)"
    return settings.budget.max_usd, "drift check (budget.max_usd)"


def new_run_id(clock: Clock) -> str:
    return f"drift-{clock.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def check_drift(paths: Sequence[Path], settings: Settings, options: DriftOptions, *, clock: Clock,
                transport: AsyncBaseTransport | None = None) -> DriftReport:
    """Run the drift check (see the module doc). Raises CassetteError (a cassette refused),
    ConfigError (no OPENAI_API_KEY while there is something to replay), or
    CostLimitExceeded (the sample's estimate is over the cap: nothing is sent). A budget refusing a
    request mid-way (the daily one, say) is not raised: `report.refused` holds it, what was compared is
    kept and the rest is `skipped` ("not sent: …"); what was sent is ledgered. A request for a model
    with no known price is not sent (`skipped`): an unknown price is never $0.
    `transport` replaces the network (tests)."""
    from tvdb.services.modes import api_key

    loaded = load_cassettes(_once(paths))
    plans = {c.path: sample_of(c, options.sample, options.seed) for c in loaded}
    report = DriftReport(new_run_id(clock))
    sampled = [p for ps in plans.values() for p in ps if p.skip is None]
    key = api_key(settings, "embedder")
    if sampled and key is None:
        raise ConfigError("the drift check sends requests to the OpenAI API and needs a key: set OPENAI_API_KEY "
                          "(or openai_api_key in tvdb.yaml); to try it offline, start `tvdb emulate` and set "
                          "OPENAI_BASE_URL to its address")
    for cassette in loaded:
        ps = plans[cassette.path]
        report.cassettes.append({"path": str(cassette.path), "interactions": len(cassette.interactions),
                                 "sampled": sum(1 for p in ps if p.skip is None),
                                 "skipped": sum(1 for p in ps if p.skip is not None),
                                 "scenario": cassette.tvdb.get("scenario")})
    if sampled:
        asyncio.run(_replay(report, sampled, settings, options, clock, key or "", transport))
    by_key = {(o.cassette, o.index): o for o in report.outcomes}
    report.outcomes = [by_key.get((str(p.cassette), p.index)) or
                       p.skipped(p.skip or "") for ps in plans.values() for p in ps]
    return report


async def _replay(report: DriftReport, sampled: list[Planned], settings: Settings,
                  options: DriftOptions, clock: Clock, key: str, transport: AsyncBaseTransport | None) -> None:
    from tvdb.db import open_storage
    from tvdb.ledger.prices import PriceTable
    from tvdb.ledger.usage import price_call
    from tvdb.services.calls import ServiceCaller
    from tvdb.services.factory import build_budget
    from tvdb.sessions import wire as w

    prices = PriceTable.load(settings.prices)
    estimates, priced = [], []
    for p in sampled:
        model, tokens = w.embedding_estimate(_body_bytes(p.request.get("body")))
        cost = price_call(prices, service=OPENAI, model=model, units=tokens, implementation=Implementation.REAL,
                          day=clock.now().date()).would_cost_nusd
        if cost is None:  # an unknown price is never $0: not sent (a recorded model_not_found, say)
            report.outcomes.append(p.skipped(f"no price known for model {model!r}: not sent (an unknown "
                                             "price is never $0)"))
            continue
        estimates.append((model, tokens, cost))
        priced.append(p)
    if not priced:
        return
    total = sum(c for _, _, c in estimates)
    cap, window = cap_of(options, settings)
    if cap is not None and total > cap * 1e9:  # the whole sample or nothing: no half-checked night
        raise CostLimitExceeded(spent=0.0, reserved=0.0, limit=cap, requested=total / 1e9, window=window)
    options = replace(options, max_usd=cap)  # every reservation is checked against the same cap
    db = open_storage(settings)
    try:
        budget = build_budget(db, settings, clock)
        caller = ServiceCaller(db=db, prices=prices, clock=clock, budget=budget)
        from tvdb.http import AsyncClient, Timeout

        base = (settings.openai_base_url or OPENAI_DEFAULT).rstrip("/")
        async with AsyncClient(transport=transport, timeout=Timeout(60.0)) as client:
            for p, (model, tokens, _) in zip(priced, estimates, strict=True):
                if report.refused is not None:  # a budget said no: nothing more is sent
                    report.outcomes.append(p.skipped(f"not sent: {report.refused}"))
                    continue
                try:
                    report.outcomes.append(await _one(caller, client, base, key, p, model, tokens, options,
                                                      report))
                except CostLimitExceeded as exc:  # raised before the request: what was compared is kept
                    report.refused = exc
                    report.outcomes.append(p.skipped(f"not sent: {exc}"))
    finally:
        db.close()


async def _one(caller: Any, client: Any, base: str, key: str, p: Planned, model: str, tokens: int,
               options: DriftOptions, report: DriftReport) -> Outcome:
    from tvdb.ledger.guard import CallScope
    from tvdb.services.calls import CallSpec
    from tvdb.sessions import wire as w

    body = _body_bytes(p.request.get("body"))

    async def send() -> Wire:
        from tvdb.errors import ServiceTimeoutError, ServiceUnavailableError
        from tvdb.http import ACCEPT_ENCODING, ConnectError, TimeoutException, TransportError

        headers = {"authorization": f"Bearer {key}", "content-type": "application/json",
                   "accept-encoding": ACCEPT_ENCODING}
        try:
            response = await client.post(f"{base}/embeddings", content=body, headers=headers)
        except ConnectError:
            raise ServiceUnavailableError(f"openai: cannot connect to {base}", service=OPENAI) from None
        except TimeoutException:
            raise ServiceTimeoutError("openai: no answer in 60 s", service=OPENAI, maybe_billed=True) from None
        except TransportError as exc:
            raise ServiceUnavailableError(f"openai: {type(exc).__name__}", service=OPENAI, maybe_billed=True) from None
        wire = Wire(response.status_code, tuple(response.headers.items()), response.content)
        if wire.status >= 300:
            raise _Answered(wire)
        return wire

    # the correlation id names the interaction, so a ledger row leads back to the cassette
    scope = CallScope(report.run_id, None, STAGE, correlation_id=f"{p.cassette.name}#{p.index}")
    spec = CallSpec(service=OPENAI, implementation=Implementation.REAL, model=model, unit="tokens",
                    estimate_units=tokens, send=send, actual_units=lambda r: w.prompt_tokens(r, tokens),
                    usage_of=w.embedding_usage, request_id_of=lambda r: r.header("x-request-id"),
                    http_status_of=lambda r: r.status, provenance=PROVENANCE, run_budget_usd=options.max_usd)
    try:
        done = await caller.call(scope, spec)
    except _Answered as answered:
        return judge(p, answered.wire, options.min_cosine)
    except ServiceError as exc:
        return Outcome(str(p.cassette), p.index, describe(p.request), f"{p.response['status']['code']} → –",
                       "error", (exc.message,))
    done.commit(caller.db, caller.budget)
    spent = done.row.pricing.cost_nusd or 0
    report.spent_nusd += spent
    return judge(p, done.value, options.min_cosine, spent)
