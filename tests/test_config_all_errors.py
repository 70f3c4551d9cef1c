"""A tvdb.yaml (its settings and its `prices:` override) and an emulator config with several problems
report every one in one pass, each at file:line, instead of one per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvdb.config import resolve_settings
from tvdb.emulator.config import load_emulator_config
from tvdb.errors import ConfigError
from tvdb.ledger.prices import PriceTable

CONFIG = """\
daily_budget_usd: lots
prices:
  openai:
    text-embedding-3-small:
      usd_per_1m_tokens: 20000
    my-model:
      usd_per_1m_tokn: 0.1
    other-model: {}
  llamaparse:
    usd_per_1000_credits: nope
    credits_per_page:
      fast: -1
"""
MISSPELT = ("(allowed: batch_usd_per_1m_tokens, usd_per_1m_tokens, usd_per_token); a price under a misspelt key "
            "would be ignored and the shipped one used instead")


def test_a_config_files_settings_and_price_problems_come_out_together_each_at_its_line(tmp_path: Path) -> None:
    config = tmp_path / "tvdb.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ConfigError) as raised:
        resolve_settings(cwd=tmp_path, environ={}, dotenv=False)
    assert str(raised.value).splitlines() == [
        f"{config}:1: daily_budget_usd: must be a number of USD like 5 or 0.50, got 'lots'",
        f"{config}:5: prices.openai.text-embedding-3-small.usd_per_1m_tokens: 20000 USD per 1M tokens is "
        "implausible (expected 0.0001..100); is it in the wrong unit (per token instead of per 1M tokens)?",
        f"{config}:7: prices.openai.my-model.usd_per_1m_tokn: unknown key 'usd_per_1m_tokn' {MISSPELT}",
        f"{config}:8: prices.openai.other-model: has no price: give usd_per_1m_tokens, e.g. "
        "{usd_per_1m_tokens: '0.05'}",
        f"{config}:10: prices.llamaparse.usd_per_1000_credits: must be a number, got 'nope'",
        f"{config}:12: prices.llamaparse.credits_per_page.fast: must be a finite, non-negative number, got -1",
        "(6 problems)",
    ]


def test_price_problems_alone_are_listed_at_their_lines_before_anything_runs(tmp_path: Path) -> None:
    config = tmp_path / "tvdb.yaml"
    config.write_text(CONFIG.replace("daily_budget_usd: lots\n", ""))
    with pytest.raises(ConfigError) as raised:
        resolve_settings(cwd=tmp_path, environ={}, dotenv=False)
    lines = str(raised.value).splitlines()
    assert lines[0].startswith(f"{config}:4: prices.openai.text-embedding-3-small.usd_per_1m_tokens: 20000 ")
    assert lines[-1] == "(5 problems)"


def test_the_price_table_itself_lists_every_problem_of_an_override() -> None:
    with pytest.raises(ConfigError) as raised:
        PriceTable.load({"openai": {"my-model": {"usd_per_1m_tokn": "0.1"}},
                         "llamaparse": {"usd_per_1000_credits": "nope"}})
    assert str(raised.value) == (
        f"prices: openai.my-model.usd_per_1m_tokn: unknown key 'usd_per_1m_tokn' {MISSPELT}\n"
        "prices: llamaparse.usd_per_1000_credits: must be a number, got 'nope'\n(2 problems)")


def test_a_misspelt_parse_tier_in_a_price_override_is_refused() -> None:
    # parse.tier accepts only the shipped tiers, so a credit rate under any other name priced nothing
    with pytest.raises(ConfigError) as raised:
        PriceTable.load({"llamaparse": {"credits_per_page": {"agentc": 50, "fast": 2}}})
    assert str(raised.value) == (
        "prices: llamaparse.credits_per_page.agentc: unknown key 'agentc' (allowed: agentic, agentic_plus, "
        "cost_effective, fast); a price under a misspelt key would be ignored and the shipped one used instead")


def test_an_emulator_config_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "emu.yaml"
    path.write_text("rpm: 0\nburst: 3\nlatency_ms: slow\n")
    with pytest.raises(ConfigError) as raised:
        load_emulator_config(path)
    assert str(raised.value) == (
        f"{path}:1: rpm: must be at least 1, got 0\n"
        f"{path}:2: burst: unknown key 'burst' (allowed: rpm, tpm, latency_ms, gzip, memo_entries, seed, "
        "parse_per_page_ms, parse_queue_ms, parse_credits, parse_uploads_per_10s, parse_retry_after, faults)\n"
        f"{path}:3: latency_ms: must be a number, got 'slow'\n(3 problems)")
