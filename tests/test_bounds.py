"""Every number tvdb reads has bounds: each numeric field of the settings, the scenario schema, the fault
plan and the emulator config, found by walking the models (a field added without bounds fails the
first test), is refused past its bounds — huge, negative, inf, NaN — with exit 2 naming the env var, the
file and line, or the flag; never an OverflowError, "date value out of range" or exit 70. Values at
the bounds work end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types as at
import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tests.cli_support import Cli, in_process_cli
from tvdb.bounds import MAX_COUNT, MAX_USD
from tvdb.config import env_var_names, resolve_settings
from tvdb.emulator.config import EmulatorConfig, load_emulator_config
from tvdb.errors import ConfigError, ScenarioError
from tvdb.faults.plan import Fault, FaultPlan
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.schema import Scenario
from tvdb.settings import Settings

REPO = Path(__file__).resolve().parents[1]
Path_ = tuple[str | int, ...]
# bounded by a model validator instead of Field metadata (a union of constrained types reads badly)
VALIDATOR_BOUNDED = {("nth",)}


def _models(annotation: object) -> Iterator[tuple[type[BaseModel], bool]]:
    """Models inside an annotation, with whether they sit in a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
        return
    listed = typing.get_origin(annotation) is list
    for arg in typing.get_args(annotation):
        for model, inner in _models(arg):
            yield model, inner or listed


def _number_kind(annotation: object) -> type | None:
    if annotation in (int, float):
        return annotation  # type: ignore[return-value]
    for arg in typing.get_args(annotation):
        kind = _number_kind(arg)
        if kind is not None:
            return kind
    return None


def numeric_fields(model: type[BaseModel], prefix: Path_ = ()) -> list[tuple[Path_, FieldInfo, type]]:
    """(key path, field, int | float) of every numeric field under `model`; a list of models is entered at [0]."""
    out: list[tuple[Path_, FieldInfo, type]] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        nested = list(_models(info.annotation))
        if nested:
            sub, listed = nested[0]
            out += numeric_fields(sub, (*path, 0) if listed else path)
            continue
        kind = _number_kind(info.annotation)
        if kind is not None:
            out.append((path, info, kind))
    return out


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    metadata = list(info.metadata)
    for arg in typing.get_args(info.annotation):  # list[Annotated[float, Field(...)]]
        for meta in getattr(arg, "__metadata__", ()):
            metadata += getattr(meta, "metadata", [])
    low = high = None
    for m in metadata:
        if isinstance(m, at.Ge | at.Gt):
            low = float(m.ge if isinstance(m, at.Ge) else m.gt)  # type: ignore[arg-type]
        if isinstance(m, at.Le | at.Lt):
            high = float(m.le if isinstance(m, at.Le) else m.lt)  # type: ignore[arg-type]
    return low, high


SETTINGS = numeric_fields(Settings)
SCENARIO = numeric_fields(Scenario)  # its own keys; its settings sections are the Settings' above
FAULT = numeric_fields(Fault, ("faults", 0))
FAULT_PLAN = [f for f in numeric_fields(FaultPlan) if f[0][0] != "faults"]
EMULATOR = [f for f in numeric_fields(EmulatorConfig) if f[0][0] != "faults"]


def test_the_walk_finds_the_fields_it_should() -> None:
    names = {".".join(map(str, p)) for p, _, _ in SETTINGS}
    assert {"reservation_ttl_s", "signed_url_ttl_s", "limits.openai_tokens_per_minute", "alerts.smtp.port",
            "alerts.thresholds_pct", "embedding.consistency_check.sample", "embedding.dimensions"} <= names
    assert len(SETTINGS) >= 28
    assert {p for p, _, _ in SCENARIO} >= {("expectations", "retrieval", 0, "top_k"),
                                           ("expectations", "documents", 0, "max_chunks"),
                                           ("expectations", "max_cost_usd")}
    assert {p for p, _, _ in EMULATOR} == {("rpm",), ("tpm",), ("latency_ms",), ("memo_entries",), ("seed",),
                                           ("parse_per_page_ms",), ("parse_queue_ms",), ("parse_credits",),
                                           ("parse_uploads_per_10s",)}


@pytest.mark.parametrize("model, fields", [("settings", SETTINGS), ("scenario", SCENARIO), ("fault", FAULT),
                                           ("fault plan", FAULT_PLAN), ("emulator", EMULATOR)])
def test_every_numeric_field_has_a_lower_and_an_upper_bound(model: str, fields: list[Any]) -> None:
    unbounded = [p for p, info, _ in fields if None in _bounds(info) and p[-1:] not in VALIDATOR_BOUNDED]
    assert unbounded == [], f"{model}: numeric fields without bounds: {unbounded}"


def _outside(info: FieldInfo, kind: type) -> list[str]:
    """Values past each bound (as text: env vars are text), plus inf/NaN for floats."""
    low, high = _bounds(info)
    big = "1" + "0" * 30
    values = [big, "-" + big] if kind is int else ["1e30", "-1e30", "inf", "-inf", "nan"]
    if high is not None and high < 1e6:
        values.append(str(int(high) + 1) if kind is int else repr(high * 2 + 1))
    if low is not None and low > -1e6:
        values.append(str(int(low) - 1) if kind is int else repr(low - 1))
    return values


def _env_cases() -> Iterator[Any]:
    names = {path: var for var, path in env_var_names().items()}
    for path, info, kind in SETTINGS:
        for value in _outside(info, kind):
            yield pytest.param(names[path], value, id=f"{names[path]}={value}")


@pytest.mark.parametrize("var, value", list(_env_cases()))
def test_an_out_of_bounds_environment_variable_is_refused_naming_it(tmp_path: Path, var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings(cwd=tmp_path, environ={var: value})
    assert str(info.value).startswith(f"{var}={value} (environment): "), str(info.value)


def _nest(path: Path_, value: Any) -> Any:
    """{"a": {"b": [{"c": value}]}} for ("a", "b", 0, "c")."""
    for part in reversed(path):
        value = [value] if isinstance(part, int) else {part: value}
    return value


def _yaml_value(text: str, kind: type) -> Any:
    return int(text) if kind is int else float(text)


def _file_cases(fields: list[Any]) -> Iterator[Any]:
    for path, info, kind in fields:
        for value in _outside(info, kind):
            yield pytest.param(path, _yaml_value(value, kind), id=f"{'.'.join(map(str, path))}={value}")


def _dump(data: Any) -> str:
    # YAML has .inf/.nan; yaml.safe_dump writes them so, and big ints as plain digits
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("path, value", list(_file_cases(SETTINGS)))
def test_an_out_of_bounds_tvdb_yaml_value_names_file_line_and_key(tmp_path: Path, path: Path_, value: Any) -> None:
    data = _nest(path, [value] if path[-1] == "thresholds_pct" else value)
    (tmp_path / "tvdb.yaml").write_text("mode: mock\n" + _dump(data))
    with pytest.raises(ConfigError) as info:
        resolve_settings(cwd=tmp_path, environ={})
    dotted = ".".join(map(str, path))
    assert f"tvdb.yaml:{len(path) + 1}: {dotted}" in str(info.value), str(info.value)


def _scenario(tmp_path: Path, extra: dict[str, Any]) -> Path:
    (tmp_path / "a.md").write_text("harbour sensors measure the tide")
    path = tmp_path / "s.yaml"
    path.write_text(_dump({"name": "s", "documents": ["a.md"], **extra}))
    return path


def _scenario_data(path: Path_, value: Any) -> dict[str, Any]:
    if path[0] == "faults":
        fault: dict[str, Any] = {"service": "openai", "kind": "status", "status": 500, path[-1]: value}
        if path[-1] == "status":
            fault["status"] = value
        return {"faults": [fault]}
    data: dict[str, Any] = _nest(path, value)
    if path[:2] == ("expectations", "documents") or path[:2] == ("expectations", "retrieval"):
        data["expectations"][path[1]][0].setdefault("document", "a.md")
    if path[:2] == ("expectations", "retrieval"):
        data["expectations"]["retrieval"][0]["query"] = "tide"
    if path[:2] == ("expectations", "requests"):
        data["expectations"]["requests"][0]["service"] = "openai"
    return data


@pytest.mark.parametrize("path, value", list(_file_cases(SCENARIO + FAULT)))
def test_an_out_of_bounds_scenario_value_names_file_line_and_key(tmp_path: Path, path: Path_, value: Any) -> None:
    scenario = _scenario(tmp_path, _scenario_data(path, value))
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert info.value.path == scenario and info.value.line is not None and info.value.line > 1
    key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
    assert info.value.key is not None and info.value.key.startswith(key.rsplit(".", 1)[0]), (info.value.key, key)


SCENARIO_SETTINGS = [f for f in SETTINGS if f[0][0] in ("parse", "chunking", "embedding", "budget")]


@pytest.mark.parametrize("path, value", list(_file_cases(SCENARIO_SETTINGS)))
def test_an_out_of_bounds_setting_in_a_scenario_names_file_line_and_key(tmp_path: Path, path: Path_,
                                                                       value: Any) -> None:
    scenario = _scenario(tmp_path, _nest(path, value))
    with pytest.raises(ScenarioError) as info:  # found when the scenario loads, with its other problems
        loaded = load_scenario(scenario)
        resolve_settings(cwd=tmp_path, environ={}, scenario=loaded.scenario.settings_layer(),
                         scenario_doc=loaded.source)
    assert (info.value.path, info.value.line, info.value.key) == (scenario, len(path) + 3, ".".join(path))


@pytest.mark.parametrize("path, value", list(_file_cases(EMULATOR + FAULT_PLAN[:0] + FAULT)))
def test_an_out_of_bounds_emulator_config_value_names_file_line_and_key(tmp_path: Path, path: Path_,
                                                                       value: Any) -> None:
    data = _scenario_data(path, value) if path[0] == "faults" else _nest(path, value)
    (tmp_path / "emu.yaml").write_text(_dump(data))
    with pytest.raises(ConfigError) as info:
        load_emulator_config(tmp_path / "emu.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'emu.yaml'}:"), str(info.value)
    assert ": faults[0]" in str(info.value) if path[0] == "faults" else f": {path[0]}: " in str(info.value)


@pytest.mark.parametrize("value", [-1, 2**63])
def test_a_fault_plan_seed_out_of_bounds_is_refused(value: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="seed"):
        FaultPlan.of([], seed=value)


@pytest.mark.parametrize("path, value", [(("alerts", "thresholds_pct"), True), (("retry", "max_attempts"), True),
                                         (("signed_url_ttl_s",), False)])
def test_a_boolean_is_not_a_number(tmp_path: Path, path: Path_, value: bool) -> None:
    (tmp_path / "tvdb.yaml").write_text(_dump(_nest(path, [value] if path[-1] == "thresholds_pct" else value)))
    with pytest.raises(ConfigError, match="expected a number, got a boolean"):
        resolve_settings(cwd=tmp_path, environ={})
    scenario = _scenario(tmp_path, {"expectations": {"retrieval": [{"query": "q", "document": "a.md",
                                                                    "top_k": True}]}})
    with pytest.raises(ScenarioError, match="expected a number, got a boolean"):
        load_scenario(scenario)




@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))

    return in_process_cli(monkeypatch, capsys)


BIG = "1" + "0" * 30
FLAG_CASES = [
    (["runs", "-n", BIG], "'--limit' / '-n'"), (["runs", "--limit", "0"], "'--limit' / '-n'"),
    (["runs", "-n", "-5"], "'--limit' / '-n'"),
    (["alerts", "list", "--limit", BIG], "'--limit'"),
    (["emulate", "--port", "70000"], "'--port' / '-p'"), (["emulate", "--port", BIG], "'--port' / '-p'"),
    (["emulate", "--port", "-1"], "'--port' / '-p'"),
    (["emulate", "--latency-ms", "1e30"], "'--latency-ms'"), (["emulate", "--latency-ms", "-1"], "'--latency-ms'"),
    (["emulate", "--rpm", BIG], "'--rpm'"), (["emulate", "--tpm", "0"], "'--tpm'"),
    (["run", "s.yaml", "--max-usd", "1e30"], "--max-usd"), (["run", "s.yaml", "--max-usd", "-1"], "--max-usd"),
    (["run", "s.yaml", "--max-usd", "nan"], "--max-usd"), (["run", "s.yaml", "--max-usd", "inf"], "--max-usd"),
    (["cost", "prune", "--older-than", "99999999999d"], "--older-than"),
    (["cost", "report", "--since", "9999999999d"], "--since"),
    (["alerts", "mute", "--for", "99999999999d"], "--for"),
]


@pytest.mark.parametrize("args, flag", FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_an_out_of_bounds_option_is_exit_2_naming_the_flag(cli: Cli, tmp_path: Path, args: list[str],
                                                          flag: str) -> None:
    _scenario(tmp_path, {})
    code, out, err = cli(*args)
    assert code == 2, out + err
    assert flag in err and "internal error" not in err and "Traceback" not in err


def test_values_at_the_bounds_work_end_to_end(tmp_path: Path) -> None:
    """The largest values every bound allows, together: a run, a report and an alert check succeed."""
    env = {
        **os.environ, "TVDB_DATA_DIR": str(tmp_path / ".tvdb"),
        "TVDB_SIGNED_URL_TTL_S": str(7 * 86_400), "TVDB_RESERVATION_TTL_S": str(7 * 86_400),
        "TVDB_DAILY_BUDGET_USD": str(MAX_USD), "TVDB_BUDGET_MAX_USD": str(MAX_USD),
        "TVDB_LIMITS_OPENAI_REQUESTS_PER_HOUR": str(MAX_COUNT), "TVDB_LIMITS_OPENAI_REQUESTS_PER_MINUTE":
        str(MAX_COUNT), "TVDB_LIMITS_OPENAI_TOKENS_PER_MINUTE": str(MAX_COUNT),
        "TVDB_ALERTS_ERROR_RATE_WINDOW_S": str(31 * 86_400), "TVDB_ALERTS_ERROR_RATE_MIN_CALLS": str(MAX_COUNT),
        "TVDB_ALERTS_THRESHOLDS_PCT": "0.001,1000", "TVDB_MAX_DOCUMENT_MB": "10240",
        "TVDB_RETRY_MAX_RETRY_AFTER_S": "3600", "TVDB_RETRY_MAX_BACKOFF_S": "3600",
        "TVDB_EMBEDDING_TIMEOUT_S": "3600", "TVDB_PARSE_TIMEOUT_S": "86400",
    }
    scenario = _scenario(tmp_path, {"expectations": {"max_cost_usd": MAX_USD, "retrieval": [
        {"query": "tide", "document": "a.md", "top_k": 10_000}], "documents": [{"max_chunks": MAX_COUNT}]}})

    def tvdb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)

    done = tvdb("run", str(scenario), "--json", "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["passed"]
    for args in (("cost", "report", "--format", "json"), ("alerts", "check"), ("runs", "-n", str(MAX_COUNT))):
        done = tvdb(*args)
        assert done.returncode == 0, (args, done.stdout + done.stderr)
    assert math.isclose(json.loads(tvdb("cost", "report", "--format", "json").stdout)["budget"]["daily_usd"],
                        MAX_USD)
