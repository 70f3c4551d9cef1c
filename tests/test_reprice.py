"""Repricing (CASES.md C15): costs are recomputed from stored units, old values kept, no row deleted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.ledger_rows import add, at
from tvdb.errors import ConfigError
from tvdb.ledger.periods import Period
from tvdb.ledger.prices import PriceTable, PriceVersion
from tvdb.ledger.reports import build_report
from tvdb.ledger.reprice import reprice, reprice_history
from tvdb.ledger.retention import prune
from tvdb.storage import Database

NOW = at("2026-06-01T12:00")


def _version(
    name: str, per_1m: str, *, fast_credits: int = 1, extra_model: bool = False
) -> dict[str, object]:
    openai = {"text-embedding-3-small": {"usd_per_1m_tokens": per_1m}}
    if extra_model:
        openai["text-embedding-9-mystery"] = {"usd_per_1m_tokens": "1.00"}
    return {
        "version": name,
        "effective_from": "2026-01-01",
        "openai": openai,
        "llamaparse": {"usd_per_1000_credits": "1.25", "credits_per_page": {"fast": fast_credits}},
    }


# A mis-entered price: $2 per 1M tokens instead of $0.02 (plausible enough to pass the load check).
WRONG = PriceTable([PriceVersion.from_dict(_version("wrong", "2.00"))])
FIXED = PriceTable(
    [
        PriceVersion.from_dict(_version("wrong", "2.00")),
        PriceVersion.from_dict(_version("fixed", "0.02", extra_model=True)),
    ]
)


@pytest.fixture
def db(any_db: Database) -> Database:
    """The ledger on each engine in turn (tests/conftest.py: any_db)."""
    return any_db


def _costs(db: Database) -> list[tuple[object, ...]]:
    return list(
        db.execute(
            "SELECT id, implementation, units, cost_nusd, would_cost_nusd, cost_usd, would_cost_usd, "
            "price_version FROM usage ORDER BY id"
        )
    )


def test_c15_a_price_in_the_wrong_unit_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match="implausible"):
        PriceTable.load({"openai": {"text-embedding-3-small": {"usd_per_1m_tokens": "20000"}}})


def test_c15_reprice_recomputes_from_units_and_keeps_old_values(db: Database) -> None:
    real = add(db, "2026-05-01T10:00", units=1_234_567, prices=WRONG)
    mock = add(db, "2026-05-01T10:01", units=1_000_000, impl="mock", prices=WRONG)
    failed = add(db, "2026-05-01T10:02", status="error", prices=WRONG)
    before = {r[0]: r for r in _costs(db)}
    assert before[real][3] == 2_469_134_000  # 1,234,567 tokens × $2/1M

    result = reprice(db, FIXED, "fixed", now=NOW)

    after = {r[0]: r for r in _costs(db)}
    assert len(after) == 3  # nothing deleted
    assert after[real][3:] == (24_691_340, 24_691_340, 0.02469134, 0.02469134, "fixed")
    assert after[mock][3:5] == (0, 20_000_000)  # mock: still not spent, value at the fixed price
    assert after[failed] == before[failed]  # no billable units: untouched
    assert (result.examined, result.changed, result.unpriced) == (2, 2, 0)
    assert result.old_spent_nusd == 2_469_134_000 and result.new_spent_nusd == 24_691_340
    history = reprice_history(db, result.reprice_id or "")
    assert [
        (
            h["row_ref"],
            h["old_price_version"],
            h["old_cost_nusd"],
            h["old_would_cost_nusd"],
            h["new_cost_nusd"],
        )
        for h in history
    ] == [
        (str(real), "wrong", 2_469_134_000, 2_469_134_000, 24_691_340),
        (str(mock), "wrong", 0, 2_000_000_000, 0),
    ]
    report = build_report(db, period=Period(None, None), now=NOW, daily_budget_usd=1.0)
    assert report.totals.spent.nusd == 24_691_340


def test_reprice_is_idempotent(db: Database) -> None:
    add(db, "2026-05-01T10:00", prices=WRONG)
    assert reprice(db, FIXED, "fixed", now=NOW).changed == 1
    second = reprice(db, FIXED, "fixed", now=NOW)
    assert second.changed == 0 and second.reprice_id is None
    assert db.execute("SELECT COUNT(*) FROM usage_reprices").fetchone()[0] == 1


def test_unknown_becomes_known_and_unpriced_rows_are_left_alone(db: Database) -> None:
    was_unknown = add(db, "2026-05-01T10:00", model="text-embedding-9-mystery", prices=WRONG)
    never_priced = add(db, "2026-05-01T10:01", model="text-embedding-0-unheard-of", prices=WRONG)
    result = reprice(db, FIXED, "fixed", now=NOW)
    rows = {r[0]: r for r in _costs(db)}
    assert rows[was_unknown][3:5] == (1_000_000_000, 1_000_000_000)  # 1M tokens at $1/1M
    assert rows[never_priced][3:5] == (None, None)  # still unknown, never $0
    assert (result.changed, result.unpriced) == (1, 1)
    assert result.changes[0].old_unknown == 1


def test_from_version_and_dry_run(db: Database) -> None:
    add(db, "2026-05-01T10:00", prices=WRONG)
    add(db, "2026-05-01T10:01")  # priced under the shipped table
    dry = reprice(db, FIXED, "fixed", now=NOW, from_version="wrong", dry_run=True)
    assert dry.changed == 1 and dry.reprice_id is None
    assert db.execute("SELECT COUNT(*) FROM usage WHERE price_version = 'wrong'").fetchone()[0] == 1
    done = reprice(db, FIXED, "fixed", now=NOW, from_version="wrong")
    assert done.examined == 1 and done.changed == 1


def test_parse_pages_are_repriced_per_page(db: Database) -> None:
    three = PriceTable([PriceVersion.from_dict(_version("agentic-ish", "0.02", fast_credits=3))])
    row = add(db, "2026-05-01T10:00", service="llamaparse", model="fast", units=8)
    reprice(db, three, "agentic-ish", now=NOW)
    assert db.execute("SELECT cost_nusd FROM usage WHERE id = ?", [row]).fetchone()[0] == 8 * 3 * 1_250_000


def test_folded_days_are_repriced_too(db: Database) -> None:
    for i in range(5):
        add(db, at("2026-01-05T10:00") + dt.timedelta(minutes=i), units=200_000, prices=WRONG)
    prune(db, dt.timedelta(days=30), NOW)
    result = reprice(db, FIXED, "fixed", now=NOW)
    assert result.changed == 1
    report = build_report(db, period=Period(None, None), now=NOW, daily_budget_usd=1.0)
    assert report.totals.spent.nusd == 20_000_000  # 1M tokens at $0.02/1M
    h = reprice_history(db, result.reprice_id or "")[0]
    assert (h["source"], h["old_cost_nusd"], h["new_cost_nusd"]) == ("usage_daily", 2_000_000_000, 20_000_000)


def test_unknown_version_is_a_config_error(db: Database) -> None:
    with pytest.raises(ConfigError, match="unknown price version 'nope'; known: wrong, fixed"):
        reprice(db, FIXED, "nope", now=NOW)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"llamaparse": {"tiers": {"fast": {"credits_per_page": 0}}}}, "llamaparse.tiers"),
        ({"llamaparse": {"fast": 0}}, "llamaparse.fast"),
        ({"openai": {"text-embedding-3-small": {"usd_per_1m_token": "0.05"}}},
         "openai.text-embedding-3-small.usd_per_1m_token"),
        ({"openia": {"text-embedding-3-small": {"usd_per_1m_tokens": "0.05"}}}, "openia"),
    ],
)
def test_a_misspelt_price_override_is_refused_not_ignored(override: dict[str, object], key: str) -> None:
    # Before: these loaded fine and the shipped price silently stayed in force.
    with pytest.raises(ConfigError, match=f"prices: {key}: unknown key"):
        PriceTable.load(override)


def test_a_well_formed_price_override_still_loads() -> None:
    table = PriceTable.load({"llamaparse": {"credits_per_page": {"fast": 2}},
                             "openai": {"my-model": {"usd_per_1m_tokens": "0.05"}}})
    assert table.versions[-1] == "2026-11-01+config"
    price = table.lookup("llamaparse", "fast")
    assert price is not None and price.usd_per_unit == Decimal("0.0025")
