"""What a cassette holds: interactions per service, scenario, age, recorded cost (`tvdb cassette list/show`),
and the per-interaction note a recording writes (service, model, units, live cost)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tvdb.recording.store import CassetteFile, json_body, read_cassette

if TYPE_CHECKING:
    from tvdb.ledger.prices import PriceTable


def service_of(uri: str) -> str:
    """openai | llamaparse | other, from a request URL's path."""
    path = urlsplit(uri).path
    if path.endswith("/embeddings"):
        return "openai"
    if "/parse" in path or "/parsing" in path or "/files" in path:
        return "llamaparse"
    return "other"


class Annotator:
    """The per-interaction note of a new recording: service, units and live cost (USD).

    OpenAI embeddings: model, `units` tokens (usage.prompt_tokens of a 200). LlamaParse: the
    result fetch (a GET with `expand=`) carries the job's bill — `units` pages (usage.credits /
    credits per page of the job's tier), `credits`, `model` the tier; uploads and status polls are
    0 pages. A call tvdb has no price for has `would_cost_usd` None (never $0)."""

    def __init__(self, prices: PriceTable, today: Callable[[], dt.date]) -> None:
        self.prices = prices
        self.today = today

    def __call__(self, request: Any, response: Mapping[str, Any]) -> dict[str, Any] | None:
        service = service_of(request.uri)
        status = (response.get("status") or {}).get("code")
        payload = json_body((response.get("body") or {}).get("string"))
        if service == "openai":
            sent = json_body(request.body)
            model = str(sent.get("model")) if isinstance(sent, dict) else "unknown"
            usage = payload.get("usage") if isinstance(payload, dict) else None
            tokens = usage.get("prompt_tokens") if isinstance(usage, dict) and status == 200 else 0
            units = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else 0
            return {"service": service, "model": model, "units": units, "unit": "tokens",
                    "would_cost_usd": self._cost(service, model, units), "status": status}
        if service == "llamaparse":
            return {"service": service, **self._parse_bill(request.uri, payload, status), "status": status}
        return {"service": service, "status": status}

    def _cost(self, service: str, model: str, units: float) -> float | None:
        from tvdb.domain import Implementation
        from tvdb.ledger.prices import nusd_to_usd
        from tvdb.ledger.usage import price_call

        pricing = price_call(self.prices, service=service, model=model, units=units,
                             implementation=Implementation.REAL, day=self.today())
        return None if pricing.would_cost_nusd is None else nusd_to_usd(pricing.would_cost_nusd)

    def _parse_bill(self, uri: str, payload: Any, status: Any) -> dict[str, Any]:
        from tvdb.catalog import PARSE_CREDITS_PER_PAGE

        job = payload.get("job") if isinstance(payload, dict) else None
        job = job if isinstance(job, dict) else {}
        tier = str(job.get("tier") or "unknown")
        usage = job.get("usage")
        credits = usage.get("credits") if isinstance(usage, dict) else None
        billed = "expand=" in urlsplit(uri).query and status == 200  # the result fetch: the job's bill
        if not billed or not isinstance(credits, int | float) or isinstance(credits, bool):
            return {"model": tier, "units": 0, "unit": "pages", "credits": 0, "would_cost_usd": 0.0}
        per_page = PARSE_CREDITS_PER_PAGE.get(tier)
        pages = credits / per_page if per_page else 0
        pages = int(pages) if float(pages).is_integer() else pages
        return {"model": tier, "units": pages, "unit": "pages", "credits": credits,
                "would_cost_usd": self._cost("llamaparse", tier, pages) if per_page else None}


def _instant(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class CassetteSummary:
    """One cassette at a glance. `recorded_at` comes from tvdb's metadata, else the file's mtime
    (`recorded_at_source` says which); `recorded_cost_usd` is None without tvdb notes or with an
    unpriced call."""

    path: Path
    interactions: int
    by_service: dict[str, int]
    scenario: str | None
    scenario_path: str | None
    recorded_at: dt.datetime
    recorded_at_source: str
    recorded_cost_usd: float | None
    versions: dict[str, str] = field(default_factory=dict)

    def age(self, now: dt.datetime) -> dt.timedelta:
        return now - self.recorded_at

    def as_json(self, now: dt.datetime, max_age: dt.timedelta | None = None) -> dict[str, Any]:
        age = self.age(now)
        return {
            "path": str(self.path), "scenario": self.scenario, "scenario_path": self.scenario_path,
            "interactions": self.interactions, "by_service": dict(self.by_service),
            "recorded_at": self.recorded_at.isoformat(), "recorded_at_source": self.recorded_at_source,
            "age_days": round(age.total_seconds() / 86400, 2), "recorded_cost_usd": self.recorded_cost_usd,
            "versions": dict(self.versions), "stale": bool(max_age is not None and age > max_age),
        }


def summarize(loaded: CassetteFile) -> CassetteSummary:
    meta = loaded.tvdb
    services: Counter[str] = Counter()
    cost = 0.0
    priced = True
    newest: dt.datetime | None = None
    for item in loaded.interactions:
        note = item.get("tvdb") if isinstance(item.get("tvdb"), dict) else None
        services[str(note.get("service")) if note else service_of(str(item["request"].get("uri", "")))] += 1
        if note is None:
            priced = False
            continue
        if "would_cost_usd" in note:  # openai and llamaparse notes; other services have no price
            value = note.get("would_cost_usd")
            if isinstance(value, int | float):
                cost += float(value)
            else:
                priced = False
        stamp = _instant(note.get("recorded_at"))
        if stamp and (newest is None or stamp > newest):
            newest = stamp
    recorded = _instant(meta.get("recorded_at")) or newest
    source = "metadata"
    if recorded is None:
        recorded = dt.datetime.fromtimestamp(loaded.path.stat().st_mtime, dt.UTC)
        source = "file mtime"
    raw_versions = meta.get("versions")
    return CassetteSummary(
        path=loaded.path, interactions=len(loaded.interactions), by_service=dict(sorted(services.items())),
        scenario=meta.get("scenario"), scenario_path=meta.get("scenario_path"), recorded_at=recorded,
        recorded_at_source=source, recorded_cost_usd=cost if priced and loaded.interactions else None,
        versions={str(k): str(v) for k, v in raw_versions.items()} if isinstance(raw_versions, dict) else {},
    )


def summarize_path(path: Path) -> CassetteSummary:
    """Raises CassetteError for a missing, hostile or malformed cassette."""
    return summarize(read_cassette(path))
