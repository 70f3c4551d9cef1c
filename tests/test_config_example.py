"""tvdb.yaml.example documents every key with its real default, and loads as a valid config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tvdb.config import Settings, env_var_names, resolve_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "tvdb.yaml.example"


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def test_every_key_is_documented_with_its_default() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    defaults = Settings().model_dump(mode="json")
    for path in env_var_names().values():
        assert _get(example, path) == _get(defaults, path), ".".join(path)
    assert "prices" in example


def test_example_is_a_valid_config_equal_to_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "with").mkdir()
    (tmp_path / "with" / "tvdb.yaml").write_text(EXAMPLE.read_text())
    with_example = resolve_settings(cwd=tmp_path / "with", environ={})
    without = resolve_settings(cwd=tmp_path / "without", environ={})
    assert with_example.model_dump(exclude={"data_dir"}) == without.model_dump(exclude={"data_dir"})
