"""Versioned price table shipped as data (`prices.json`), with overrides from config.

Money is computed in `Decimal` and stored both as USD (REAL, for people) and as integer
nano-dollars (`*_nusd`, for exact sums and budget arithmetic). An unknown price is `None`,
never 0 (see PriceUnknownError).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from importlib import resources
from typing import Any

from tvdb.catalog import PARSE_TIERS
from tvdb.errors import ConfigError

NANO_PER_USD = 10**9
# A price outside these bounds is almost certainly in the wrong unit (e.g. a per-1M figure
# entered as per-token), so it is refused at load rather than silently multiplied into budgets.
_PLAUSIBLE_USD_PER_1M_TOKENS = (Decimal("0.0001"), Decimal("100"))
_PLAUSIBLE_USD_PER_1000_CREDITS = (Decimal("0.01"), Decimal("100"))
_PLAUSIBLE_CREDITS_PER_PAGE = (Decimal("0.01"), Decimal("1000"))

OPENAI = "openai"
LLAMAPARSE = "llamaparse"


def usd_to_nusd(usd: Decimal) -> int:
    """USD to integer nano-dollars, rounded up so that a budget never under-counts."""
    return int((usd * NANO_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def nusd_to_usd(nusd: int) -> float:
    return nusd / NANO_PER_USD


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """USD per one unit (one token, or one page at a tier) under price `version`."""

    service: str
    model: str
    unit: str
    usd_per_unit: Decimal
    version: str
    credits_per_unit: Decimal | None = None  # LlamaParse credits per page at this tier; None for tokens

    def cost_nusd(self, units: int | float) -> int:
        return usd_to_nusd(self.usd_per_unit * Decimal(str(units)))


def _dec(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"price {where}: {value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise ConfigError(f"price {where}: {value!r} must be a finite, non-negative number")
    return d


def _check(d: Decimal, bounds: tuple[Decimal, Decimal], where: str, unit: str) -> Decimal:
    low, high = bounds
    if not low <= d <= high:
        raise ConfigError(
            f"price {where} = {d} {unit} is implausible (expected {low}..{high}); "
            "is it in the wrong unit (per token instead of per 1M tokens)?"
        )
    return d


@dataclass(frozen=True, slots=True)
class PriceVersion:
    version: str
    effective_from: dt.date
    usd_per_token: Mapping[str, Decimal]
    usd_per_page: Mapping[str, Decimal]
    credits_per_page: Mapping[str, Decimal]
    batch_usd_per_token: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)  # OpenAI Batch API

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PriceVersion:
        version = str(raw.get("version") or "custom")
        eff = dt.date.fromisoformat(str(raw.get("effective_from", "1970-01-01")))
        per_token: dict[str, Decimal] = {}
        batch: dict[str, Decimal] = {}
        for model, spec in (raw.get(OPENAI) or {}).items():
            where = f"{version}/{OPENAI}/{model}"
            if "usd_per_token" in spec:
                per_1m = _dec(spec["usd_per_token"], where) * 1_000_000
            else:
                per_1m = _dec(spec.get("usd_per_1m_tokens"), where)
            per_token[model] = _check(per_1m, _PLAUSIBLE_USD_PER_1M_TOKENS, where, "USD per 1M tokens") / 1_000_000
            if spec.get("batch_usd_per_1m_tokens") is not None:
                batch[model] = _check(_dec(spec["batch_usd_per_1m_tokens"], f"{where}/batch"),
                                      _PLAUSIBLE_USD_PER_1M_TOKENS, f"{where}/batch", "USD per 1M tokens") / 1_000_000
        per_page: dict[str, Decimal] = {}
        credits_per_page: dict[str, Decimal] = {}
        lp = raw.get(LLAMAPARSE) or {}
        if lp:
            where = f"{version}/{LLAMAPARSE}"
            per_credit = _check(
                _dec(lp.get("usd_per_1000_credits"), where), _PLAUSIBLE_USD_PER_1000_CREDITS, where,
                "USD per 1,000 credits",
            ) / 1000
            for tier, credits in (lp.get("credits_per_page") or {}).items():
                c = _check(_dec(credits, f"{where}/{tier}"), _PLAUSIBLE_CREDITS_PER_PAGE, f"{where}/{tier}", "credits")
                per_page[tier] = c * per_credit
                credits_per_page[tier] = c
        return cls(version, eff, per_token, per_page, credits_per_page, batch)


class PriceTable:
    """Prices by service and model/tier, with history. Build with `PriceTable.load()`."""

    def __init__(self, versions: list[PriceVersion]) -> None:
        if not versions:
            raise ConfigError("the price table has no versions")
        self._versions = sorted(versions, key=lambda v: v.effective_from)

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> PriceTable:
        """The shipped table; `overrides` (same shape as one version) becomes the newest version."""
        raw = json.loads(resources.files("tvdb.ledger").joinpath("prices.json").read_text("utf-8"))
        versions = [PriceVersion.from_dict(v) for v in raw["versions"]]
        if overrides:
            if not isinstance(overrides, Mapping):
                raise ConfigError("prices: must be a mapping shaped like tvdb/ledger/prices.json")
            problems = override_problems(overrides)
            if problems:
                lines = [f"prices: {'.'.join(path)}: {message}" for path, message in problems]
                raise ConfigError("\n".join(lines) + (f"\n({len(lines)} problems)" if len(lines) > 1 else ""))
            merged = _merge(raw["versions"][-1], overrides)
            merged.setdefault("version", f"{versions[-1].version}+config")
            if merged["version"] == versions[-1].version:
                merged["version"] = f"{versions[-1].version}+config"
            merged["effective_from"] = str(versions[-1].effective_from)
            try:
                versions.append(PriceVersion.from_dict(merged))
            except (TypeError, AttributeError, ValueError):
                raise ConfigError(
                    "prices: an entry is empty or not shaped like tvdb/ledger/prices.json; e.g. "
                    "{openai: {my-model: {usd_per_1m_tokens: '0.05'}}, "
                    "llamaparse: {usd_per_1000_credits: '1.25', credits_per_page: {fast: 1}}}"
                ) from None
        return cls(versions)

    @property
    def versions(self) -> list[str]:
        return [v.version for v in self._versions]

    def _at(self, day: dt.date | None, version: str | None) -> PriceVersion:
        if version is not None:
            for v in self._versions:
                if v.version == version:
                    return v
            raise ConfigError(f"unknown price version {version!r}; known: {', '.join(self.versions)}")
        if day is None:
            return self._versions[-1]
        eligible = [v for v in self._versions if v.effective_from <= day]
        return eligible[-1] if eligible else self._versions[0]

    def lookup(
        self, service: str, model: str, *, day: dt.date | None = None, version: str | None = None
    ) -> UnitPrice | None:
        """The unit price, or None when unknown (never a $0 stand-in)."""
        v = self._at(day, version)
        if service == OPENAI:
            per = v.usd_per_token.get(model)
            return None if per is None else UnitPrice(service, model, "tokens", per, v.version)
        if service == LLAMAPARSE:
            per = v.usd_per_page.get(model)
            return None if per is None else UnitPrice(service, model, "pages", per, v.version,
                                                      v.credits_per_page.get(model))
        return None


def batch_price(prices: PriceTable, model: str, *, day: dt.date | None = None) -> UnitPrice | None:
    """The OpenAI Batch API price per token of `model` (half the live price for embeddings), or None.

    Source: https://platform.openai.com/docs/pricing (Batch column)."""
    v = prices._at(day, None)
    per = v.batch_usd_per_token.get(model)
    return None if per is None else UnitPrice(OPENAI, model, "tokens", per, v.version)


_OVERRIDE_KEYS = frozenset({"version", "effective_from", "sources", "comment", OPENAI, LLAMAPARSE})
_OPENAI_MODEL_KEYS = frozenset({"usd_per_1m_tokens", "usd_per_token", "batch_usd_per_1m_tokens"})
_LLAMAPARSE_KEYS = frozenset({"usd_per_1000_credits", "credits_per_page"})


Problem = tuple[tuple[str, ...], str]  # (the key's path under `prices:`, what is wrong with it)
_MISSPELT = "a price under a misspelt key would be ignored and the shipped one used instead"


def override_problems(over: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a `prices:` override, each at its key, so that a file is fixed in one go: keys
    `PriceVersion.from_dict` would silently ignore (a typo must not keep the old price), entries of the
    wrong shape, and amounts that are no number or are implausible (the wrong unit)."""
    out: list[Problem] = []
    _unknown(over, _OVERRIDE_KEYS, (), out)
    models = over.get(OPENAI)
    if models is not None and not isinstance(models, Mapping):
        out.append(((OPENAI,), "must be a mapping of model names to prices, e.g. {my-model: {usd_per_1m_tokens: "
                               "'0.05'}}"))
    elif models is not None:
        shipped = _shipped_models()
        for model, spec in models.items():
            out += _model_problems((OPENAI, str(model)), spec, str(model) in shipped)
    lp = over.get(LLAMAPARSE)
    if lp is not None and not isinstance(lp, Mapping):
        out.append(((LLAMAPARSE,), "must be a mapping such as {usd_per_1000_credits: '1.25', credits_per_page: "
                                   "{fast: 1}}"))
    elif lp is not None:
        _unknown(lp, _LLAMAPARSE_KEYS, (LLAMAPARSE,), out)
        if "usd_per_1000_credits" in lp:
            _amount(out, (LLAMAPARSE, "usd_per_1000_credits"), lp["usd_per_1000_credits"],
                    _PLAUSIBLE_USD_PER_1000_CREDITS, "USD per 1,000 credits")
        tiers = lp.get("credits_per_page")
        if tiers is not None and not isinstance(tiers, Mapping):
            out.append(((LLAMAPARSE, "credits_per_page"), "must be a mapping of tier to credits, e.g. {fast: 1}"))
        elif tiers is not None:
            # a tier no scenario can name (parse.tier accepts only these) would price nothing
            _unknown(tiers, frozenset(PARSE_TIERS), (LLAMAPARSE, "credits_per_page"), out)
            for tier, credits in tiers.items():
                _amount(out, (LLAMAPARSE, "credits_per_page", str(tier)), credits, _PLAUSIBLE_CREDITS_PER_PAGE,
                        "credits")
    return out


def _model_problems(path: tuple[str, ...], spec: Any, shipped: bool) -> list[Problem]:
    out: list[Problem] = []
    if not isinstance(spec, Mapping):
        return [(path, "must be a mapping such as {usd_per_1m_tokens: '0.05'}")]
    _unknown(spec, _OPENAI_MODEL_KEYS, path, out)
    if "usd_per_token" in spec:
        _amount(out, (*path, "usd_per_token"), spec["usd_per_token"], _PLAUSIBLE_USD_PER_1M_TOKENS,
                "USD per 1M tokens", scale=1_000_000)
    elif "usd_per_1m_tokens" in spec:
        _amount(out, (*path, "usd_per_1m_tokens"), spec["usd_per_1m_tokens"], _PLAUSIBLE_USD_PER_1M_TOKENS,
                "USD per 1M tokens")
    elif not shipped and not any(p[: len(path)] == path for p, _ in out):
        out.append((path, "has no price: give usd_per_1m_tokens, e.g. {usd_per_1m_tokens: '0.05'}"))
    if spec.get("batch_usd_per_1m_tokens") is not None:
        _amount(out, (*path, "batch_usd_per_1m_tokens"), spec["batch_usd_per_1m_tokens"],
                _PLAUSIBLE_USD_PER_1M_TOKENS, "USD per 1M tokens")
    return out


def _amount(out: list[Problem], path: tuple[str, ...], value: Any, bounds: tuple[Decimal, Decimal], unit: str,
            scale: int = 1) -> None:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        out.append((path, f"must be a number, got {value!r}"))
        return
    if not d.is_finite() or d < 0:
        out.append((path, f"must be a finite, non-negative number, got {value!r}"))
        return
    low, high = bounds
    if not low <= d * scale <= high:
        out.append((path, f"{d * scale} {unit} is implausible (expected {low}..{high}); is it in the wrong unit "
                          "(per token instead of per 1M tokens)?"))


def _shipped_models() -> set[str]:
    raw = json.loads(resources.files("tvdb.ledger").joinpath("prices.json").read_text("utf-8"))
    return {str(m) for m in (raw["versions"][-1].get(OPENAI) or {})}


def _unknown(keys: Any, allowed: frozenset[str], path: tuple[str, ...], out: list[Problem]) -> None:
    for key in sorted(str(k) for k in keys if k not in allowed):
        out.append(((*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))}); {_MISSPELT}"))


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out
