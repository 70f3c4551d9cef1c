"""A tvdb.yaml (its settings and its `prices:` override) and an emulator config with several problems
report every one in one pass, each at file:line, instead of one per run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_run import tvdb
from tvdb.config import resolve_settings
from tvdb.emulator.config import load_emulator_config
from tvdb.errors import ConfigError
from tvdb.ledger.prices import PriceTable
from tvdb.scenarios.loader import load_scenario

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


def _scenario(tmp_path: Path, body: str) -> Path:
    (tmp_path / "a.md").write_text("hello", encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a.md]\n" + body, encoding="utf-8")
    return path


def _resolve_with(tmp_path: Path, scenario: Path, environ: dict[str, str] | None = None) -> None:
    loaded = load_scenario(scenario)
    resolve_settings(cwd=tmp_path, environ=environ or {}, dotenv=False,
                     scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)


def test_a_bad_config_value_is_reported_when_the_scenario_sets_the_same_key(tmp_path: Path) -> None:
    # the scenario's value used to replace it in the merge, so the bad value was never seen (and every
    # scenario that does not set the key would trip over it later)
    config = tmp_path / "tvdb.yaml"
    config.write_text('chunking: {max_tokens: "lots"}\n')
    scenario = _scenario(tmp_path, "chunking: {max_tokens: 100}\n")
    with pytest.raises(ConfigError) as raised:
        _resolve_with(tmp_path, scenario)
    assert str(raised.value) == f"{config}:1: chunking.max_tokens: must be a whole number, got 'lots'"
    assert raised.value.fix == f"edit {config}:1: chunking.max_tokens must be a whole number"


def test_every_problem_of_a_config_file_is_listed_whatever_overrides_it(tmp_path: Path) -> None:
    # overridden by the scenario, by the environment, or not at all: all in one pass, in file order
    config = tmp_path / "tvdb.yaml"
    config.write_text("chunking:\n  max_tokens: lots\n  overlap_tokens: -1\nparse:\n  concurrency: 0\n"
                      "daily_budget_usd: many\n")
    scenario = _scenario(tmp_path, "chunking:\n  max_tokens: 100\n")
    with pytest.raises(ConfigError) as raised:
        _resolve_with(tmp_path, scenario, {"TVDB_PARSE_CONCURRENCY": "2"})
    assert str(raised.value).splitlines() == [
        f"{config}:2: chunking.max_tokens: must be a whole number, got 'lots'",
        f"{config}:3: chunking.overlap_tokens: must be at least 0, got -1",
        f"{config}:5: parse.concurrency: must be at least 1, got 0",
        f"{config}:6: daily_budget_usd: must be a number of USD like 5 or 0.50, got 'many'",
        "(4 problems)",
    ]


def test_a_config_problem_is_listed_beside_the_merged_settings_problems(tmp_path: Path) -> None:
    # the environment's max_tokens hides the file's bad one and is itself below the file's overlap
    config = tmp_path / "tvdb.yaml"
    config.write_text("chunking:\n  max_tokens: lots\n  overlap_tokens: 64\n")
    with pytest.raises(ConfigError) as raised:
        resolve_settings(cwd=tmp_path, environ={"TVDB_CHUNKING_MAX_TOKENS": "10"}, dotenv=False)
    assert str(raised.value).splitlines() == [
        "TVDB_CHUNKING_MAX_TOKENS=10 (environment): overlap_tokens (64) must be smaller than max_tokens (10)",
        f"{config}:2: chunking.max_tokens: must be a whole number, got 'lots'",
        "(2 problems)",
    ]


def test_a_config_files_cross_field_check_is_judged_on_the_keys_it_states(tmp_path: Path) -> None:
    config = tmp_path / "tvdb.yaml"
    # an overlap above the *default* max_tokens is fine once the scenario raises max_tokens
    config.write_text("chunking: {overlap_tokens: 600}\n")
    _resolve_with(tmp_path, _scenario(tmp_path, "chunking: {max_tokens: 1000}\n"))
    # a file that contradicts itself is wrong whatever a scenario sets
    config.write_text("chunking:\n  max_tokens: 100\n  overlap_tokens: 100\n")
    with pytest.raises(ConfigError) as raised:
        _resolve_with(tmp_path, _scenario(tmp_path, "chunking: {max_tokens: 1000}\n"))
    assert str(raised.value) == (
        f"{config}:3: chunking.overlap_tokens: overlap_tokens (100) must be smaller than max_tokens (100)")


def test_a_bad_config_value_under_a_scenarios_override_fails_the_run_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text('chunking: {max_tokens: "lots"}\n')
    scenario = _scenario(tmp_path, "chunking: {max_tokens: 100}\n")
    result = tvdb(["run", str(scenario), "--json"], tmp_path)
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["message"]) == (
        "ConfigError", f"{tmp_path / 'tvdb.yaml'}:1: chunking.max_tokens: must be a whole number, got 'lots'")


def test_an_emulator_configs_fault_checks_are_listed_beside_the_faults_field_errors(tmp_path: Path) -> None:
    # the fault's own checks run on its valid keys: beside a union value that is neither form (nth: x)
    # and beside another key's error (times: many)
    path = tmp_path / "emu.yaml"
    path.write_text("faults:\n  - {service: openai, kind: status, nth: x}\n"
                    "  - {service: openai, kind: status, status: 429, nth: 0, times: many}\n")
    with pytest.raises(ConfigError) as raised:
        load_emulator_config(path)
    assert str(raised.value).splitlines() == [
        f"{path}:2: faults[0].nth.int: must be a whole number, got 'x'",
        f"{path}:2: faults[0].nth.list[int]: must be a list (`- item` lines, or [a, b]), got 'x'",
        f"{path}:2: faults[0]: a `status` fault needs `status` (e.g. 429, 500)",
        f"{path}:3: faults[1].times: must be a whole number, got 'many'",
        f"{path}:3: faults[1]: `nth` counts calls from 1",
        "(5 problems)",
    ]
