"""Settings precedence: defaults < tvdb.yaml < scenario < environment (.env below process env) < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvdb.config import Settings, env_var_names, resolve_settings
from tvdb.errors import ConfigError, ScenarioError
from tvdb.scenarios.loader import load_scenario
from tvdb.yamlfile import load_yaml


def test_defaults(tmp_path: Path) -> None:
    s = resolve_settings(cwd=tmp_path, environ={})
    assert s.mode == "mock"
    assert s.data_dir == tmp_path / ".tvdb"
    assert s.database_path == tmp_path / ".tvdb" / "tvdb.db"
    assert s.max_document_bytes == 50 * 1024 * 1024
    assert s.daily_budget_usd == 1.0
    assert s.embedding.resolved_dimensions == 1536
    assert s.chunking.max_tokens == 512


def test_precedence_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text("mode: real\nchunking:\n  max_tokens: 300\n  overlap_tokens: 10\n")
    scenario = {"chunking": {"max_tokens": 200}}
    s = resolve_settings(cwd=tmp_path, environ={}, scenario=scenario)
    assert (s.mode, s.chunking.max_tokens, s.chunking.overlap_tokens) == ("real", 200, 10)
    s = resolve_settings(cwd=tmp_path, environ={"TVDB_CHUNKING_MAX_TOKENS": "150", "TVDB_MODE": "mock"},
                         scenario=scenario)
    assert (s.mode, s.chunking.max_tokens) == ("mock", 150)
    s = resolve_settings(cwd=tmp_path, environ={"TVDB_MODE": "mock"}, scenario=scenario, flags={"mode": "real"})
    assert s.mode == "real"


def test_dotenv_is_below_the_process_environment(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TVDB_DAILY_BUDGET_USD=2.5\nTVDB_MODE=real\n")
    s = resolve_settings(cwd=tmp_path, environ={"TVDB_MODE": "mock"})
    assert s.daily_budget_usd == 2.5
    assert s.mode == "mock"


def test_every_key_has_an_env_var() -> None:
    names = env_var_names()
    for expected in ("TVDB_DATA_DIR", "TVDB_MODE", "TVDB_DAILY_BUDGET_USD", "TVDB_CHUNKING_MAX_TOKENS",
                     "TVDB_EMBEDDING_DIMENSIONS", "TVDB_PARSE_TIER", "TVDB_BUDGET_MAX_USD"):
        assert expected in names


def test_secrets_are_masked_and_standard_names_work(tmp_path: Path) -> None:
    canary = "sk-canary-config-0123456789abcdef"
    s = resolve_settings(cwd=tmp_path, environ={"OPENAI_API_KEY": canary})
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == canary
    assert canary not in repr(s) and canary not in str(s)
    assert canary not in s.model_dump_json()


def test_bad_env_value_names_the_variable_not_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TVDB_CHUNKING_MAX_TOKENS"):
        resolve_settings(cwd=tmp_path, environ={"TVDB_CHUNKING_MAX_TOKENS": "lots"})


def test_bad_config_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text("mode: mock\nparse:\n  tier: turbo\n")
    with pytest.raises(ConfigError, match=r"tvdb\.yaml:3: parse\.tier"):
        resolve_settings(cwd=tmp_path, environ={})


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_settings(cwd=tmp_path, environ={}, config_file=Path("nope.yaml"))


def test_scenario_setting_error_points_at_the_scenario_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ndocuments: [a.txt]\nchunking:\n  max_tokens: 10\n  overlap_tokens: 20\n")
    # the scenario states both keys the check reads: found when the file is loaded, at the overlap's line
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.path, info.value.line, info.value.key) == (path, 5, "chunking.overlap_tokens")
    assert info.value.message == "overlap_tokens (20) must be smaller than max_tokens (10)"
    doc = load_yaml(path)
    with pytest.raises(ScenarioError) as info:
        resolve_settings(cwd=tmp_path, environ={}, scenario={"chunking": doc.data["chunking"]}, scenario_doc=doc)
    assert (info.value.path, info.value.line, info.value.key) == (path, 5, "chunking.overlap_tokens")


def test_dimensions_refused_for_ada(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not support `dimensions`"):
        resolve_settings(cwd=tmp_path, environ={}, flags={"embedding": {"model": "text-embedding-ada-002",
                                                                        "dimensions": 256}})


def test_list_settings_from_env(tmp_path: Path) -> None:
    s = resolve_settings(cwd=tmp_path, environ={"TVDB_ALERTS_THRESHOLDS_PCT": "25, 75"})
    assert s.alerts.thresholds_pct == [25.0, 75.0]


def test_settings_are_frozen() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        Settings().mode = "real"  # type: ignore[misc]
