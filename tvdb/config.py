"""Settings, resolved once per command from layered sources.

Precedence, lowest first: built-in defaults < `tvdb.yaml` (working directory, or `--config`) <
the scenario file < environment (`TVDB_*`, `OPENAI_API_KEY`, `LLAMA_CLOUD_API_KEY`, a `.env` file;
the process environment wins over `.env`) < command-line flags.

Every key has an environment variable: `TVDB_` + its path in upper case joined by `_`
(`mode` → `TVDB_MODE`, `chunking.max_tokens` → `TVDB_CHUNKING_MAX_TOKENS`). Secrets are
`SecretStr`, so their repr and str are masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tvdb.errors import ConfigError, ScenarioError
from tvdb.redaction import redact
from tvdb.settings import (
    AlertSettings,
    BudgetSettings,
    ChunkingSettings,
    ConsistencyCheckSettings,
    EmbeddingSettings,
    LimitsSettings,
    ParseSettings,
    RetrySettings,
    ServicesSettings,
    Settings,
    SmtpSettings,
)
from tvdb.validation import all_errors, cross_field_paths, describe, dotted, expected
from tvdb.yamlfile import YamlDocument, load_yaml

__all__ = [
    "AlertSettings", "BudgetSettings", "ChunkingSettings", "ConsistencyCheckSettings", "EmbeddingSettings",
    "LimitsSettings", "ParseSettings", "RetrySettings", "ServicesSettings", "Settings", "SmtpSettings",
    "env_var_names", "read_config_file", "read_dotenv", "resolve_settings", "scenario_settings_problems",
    "unknown_env_vars",
]

CONFIG_FILENAME = "tvdb.yaml"
# Standard variable names that the SDKs themselves read, accepted beside their TVDB_ names.
ENV_ALIASES = {
    "OPENAI_API_KEY": ("openai_api_key",),
    "OPENAI_BASE_URL": ("openai_base_url",),
    "LLAMA_CLOUD_API_KEY": ("llama_cloud_api_key",),
    "LLAMA_CLOUD_BASE_URL": ("llama_cloud_base_url",),
    "LLAMA_CLOUD_WEBHOOK_SECRET": ("llama_cloud_webhook_secret",),
    # the seed project's name for the mode; TVDB_MODE wins when both are set
    "SERVICE_MODE": ("mode",),
}
# keys whose origin the router names in provenance ("set by scenario: services.parser")
MODE_KEYS = (("mode",), ("services", "parser"), ("services", "embedder"))


# command-line flags that set a key under another name
_FLAGS = {"budget.max_usd": "--max-usd", "services.parser": "--service parser=…",
          "services.embedder": "--service embedder=…"}

_PATH_KEYS = ("data_dir", "db_path", "objects_dir")


def env_var_names(model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """`TVDB_*` variable name → key path, for every scalar key of `Settings`."""
    out: dict[str, tuple[str, ...]] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(env_var_names(ann, (*prefix, name)))
        elif name not in ("prices",):
            out["TVDB_" + "_".join((*prefix, name)).upper()] = (*prefix, name)
    return out


@dataclass(frozen=True)
class _Layer:
    data: Mapping[str, Any]
    origin: str  # "tvdb.yaml", "scenario", "env", "flag"
    doc: YamlDocument | None = None
    names: Mapping[tuple[str, ...], str] | None = None  # key path → env var / flag name
    # key path → how an error shows where the value came from: "TVDB_X=5 (environment)", secrets masked
    shown: Mapping[tuple[str, ...], str] | None = None


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def _merge(
    base: dict[str, Any], over: Mapping[str, Any], prefix: tuple[str, ...],
    origins: dict[tuple[str, ...], _Layer], layer: _Layer,
) -> None:
    for key, value in over.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and key != "prices":
            sub = base.setdefault(key, {})
            if not isinstance(sub, dict):
                sub = base[key] = {}
            _merge(sub, value, path, origins, layer)
        else:
            base[key] = value
            origins[path] = layer


def _field_annotation(path: tuple[str, ...]) -> Any:
    model: type[BaseModel] = Settings
    for key in path[:-1]:
        ann = model.model_fields[key].annotation
        assert isinstance(ann, type) and issubclass(ann, BaseModel)
        model = ann
    return model.model_fields[path[-1]].annotation


def _is_secret_field(path: tuple[str, ...]) -> bool:
    """A key whose value must never be printed, not even in the error about it."""
    return "SecretStr" in str(_field_annotation(path))


def _is_list_field(path: tuple[str, ...]) -> bool:
    return getattr(_field_annotation(path), "__origin__", None) is list


# TVDB_* variables that are not settings: the chaos knob of the resume tests, the tests' corpus path
NON_SETTING_VARS = frozenset({"TVDB_CRASH_AFTER_STAGE", "TVDB_SHARED_DIR"})


def unknown_env_vars(environ: Mapping[str, str], dotenv: Mapping[str, str] | None = None) -> list[str]:
    """`TVDB_*` variables of the environment and of `.env` that name no setting (a typo is otherwise
    silently ignored), with the nearest setting as a hint."""
    import difflib

    known = env_var_names()
    out = []
    for where, variables in (("", environ), (" (in .env)", dotenv or {})):
        for var in sorted(variables):
            if var.startswith("TVDB_") and var not in known and var not in NON_SETTING_VARS:
                close = difflib.get_close_matches(var, list(known), n=1)
                out.append(f"{var}{where} is not a tvdb setting" + (f" (did you mean {close[0]}?)" if close else ""))
    return out


def _env_layer(environ: Mapping[str, str], from_dotenv: frozenset[str] = frozenset()) -> _Layer:
    data: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    shown_as: dict[tuple[str, ...], str] = {}
    # aliases first so that an explicit TVDB_ variable wins over the SDK's standard name
    for var, path in [*ENV_ALIASES.items(), *env_var_names().items()]:
        value = environ.get(var)
        if value is not None and value != "":
            # lists are written comma-separated in the environment: TVDB_ALERTS_THRESHOLDS_PCT=50,80,100
            parsed: Any = [v.strip() for v in value.split(",") if v.strip()] if _is_list_field(path) else value
            _set_path(data, path, parsed)
            names[path] = f"{var} (in .env)" if var in from_dotenv else var
            shown = "****" if _is_secret_field(path) else redact(value)
            shown_as[path] = f"{var}={shown} ({'.env' if var in from_dotenv else 'environment'})"
    return _Layer(data, "env", names=names, shown=shown_as)


def read_config_file(path: Path, what: str = "config file") -> YamlDocument:
    """A YAML mapping with line numbers; raises ConfigError naming the file (and line) otherwise."""
    try:
        doc = load_yaml(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if doc.data is None:
        return YamlDocument(path, {}, {})
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}:1: the {what} must be a mapping of keys to values")
    return doc


MAX_DOTENV_BYTES = 1024 * 1024


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables of a `.env` file (python-dotenv syntax). Raises ConfigError naming the file, and
    the line of the first byte that is not UTF-8 (python-dotenv itself would crash on it)."""
    import io

    from dotenv import dotenv_values

    from tvdb.files import read_regular_file

    try:
        raw = read_regular_file(path, MAX_DOTENV_BYTES)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the .env file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: the .env file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                          f"column {column}); save it as UTF-8") from None
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def resolve_settings(
    *,
    cwd: Path,
    environ: Mapping[str, str],
    config_file: Path | None = None,
    scenario: Mapping[str, Any] | None = None,
    scenario_doc: YamlDocument | None = None,
    flags: Mapping[str, Any] | None = None,
    dotenv: bool = True,
) -> Settings:
    """Merge the layers and validate once. Raises ConfigError, or ScenarioError for a scenario key."""
    layers: list[_Layer] = []
    explicit = config_file is not None
    config_path = config_file if explicit else cwd / CONFIG_FILENAME
    assert config_path is not None
    if not config_path.is_absolute():
        config_path = cwd / config_path
    if explicit or config_path.exists():
        doc = read_config_file(config_path)
        layers.append(_Layer(doc.data, CONFIG_FILENAME, doc=doc))
    if scenario:
        layers.append(_Layer(scenario, "scenario", doc=scenario_doc))
    env: dict[str, str] = dict(read_dotenv(cwd / ".env")) if dotenv and (cwd / ".env").is_file() else {}
    from_dotenv = frozenset(k for k in env if k not in environ)
    env.update(environ)
    layers.append(_env_layer(env, from_dotenv))
    if flags:
        layers.append(_Layer({k: v for k, v in flags.items() if v is not None}, "flag"))

    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], _Layer] = {}
    for layer in layers:
        _merge(merged, layer.data, (), origins, layer)
    settings = _validated(merged, origins, [p for lay in layers if lay.origin == CONFIG_FILENAME
                                            for p in _stated_problems(lay)])
    updates = {k: (cwd / v if v is not None and not v.is_absolute() else v)
               for k in _PATH_KEYS if (v := getattr(settings, k)) is not None}
    named = {".".join(p): _origin(origins[p], p, merged) for p in MODE_KEYS if p in origins}
    return settings.model_copy(update=updates).with_origins(named)


def _validated(merged: dict[str, Any], origins: Mapping[tuple[str, ...], _Layer],
               found: list[ConfigError | ScenarioError]) -> Settings:
    """`merged` as Settings; else its problems, with those `found` before (tvdb.yaml's own), raised
    together. A problem both name (a bad value no layer overrides) is told once."""
    errors = _price_errors(merged.get("prices"))
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(merged)
    except ValidationError:
        errors = all_errors(Settings, merged) + errors
    found = [*found, *(_explain_one(err, origins) for err in errors)]
    if found or settings is None:
        raise _explain(list({str(e): e for e in found}.values()))
    return settings


def _price_errors(prices: Any) -> list[ErrorDetails]:
    """The `prices:` override's problems as validation errors at their keys, so that they are listed
    with file:line beside the other settings' in one pass (instead of at the first price lookup)."""
    if not isinstance(prices, Mapping):
        return []  # not a mapping: the schema says so
    from tvdb.ledger.prices import override_problems

    return [ErrorDetails(type="value_error", loc=("prices", *path), msg=message, input=None)
            for path, message in override_problems(prices)]


def scenario_settings_problems(scenario: Mapping[str, Any], doc: YamlDocument) -> list[ScenarioError]:
    """The problems of a scenario's own settings keys (`chunking:`, `embedding:`, …), judged alone,
    for listing them beside the scenario schema's problems in one pass (see `_stated_problems`)."""
    found = _stated_problems(_Layer(scenario, "scenario", doc=doc))
    return [e for e in found if isinstance(e, ScenarioError)]


def _stated_problems(layer: _Layer) -> list[ConfigError | ScenarioError]:
    """The problems of one file's settings judged alone, at the values the file states itself.

    tvdb.yaml is judged so too: in the merge a scenario, the environment or a flag may set the same
    key and hide a bad value the file still holds (and that every other scenario would trip over). A
    cross-field check made against defaults (an overlap against the default max_tokens) is not kept:
    it may hold once the other layers are merged in; the merge judges it.
    """
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], _Layer] = {}
    _merge(merged, layer.data, (), origins, layer)
    try:
        Settings.model_validate(merged)
    except ValidationError:
        return [_explain_one(err, origins) for err in all_errors(Settings, merged) if _stated(layer.data, err)]
    return []


# the error types of a model's own check: at a section (or the root), it reads keys it does not name
_MODEL_CHECKS = frozenset({"value_error", "assertion_error"})


def _stated(data: Mapping[str, Any], err: ErrorDetails) -> bool:
    """Whether the file states what `err` is about: every key a cross-field check reads, the value a
    field error is at (a section-wide check, e.g. the reservation TTL against the timeouts, is not)."""
    crossed = cross_field_paths(err)
    if crossed:
        return all(not isinstance(value := _stated_value(data, p), Mapping) and value is not _ABSENT
                   for p in crossed)
    value = _stated_value(data, err["loc"])
    return value is not _ABSENT and not (isinstance(value, Mapping) and err["type"] in _MODEL_CHECKS)


_ABSENT = object()  # a key the file does not state


def _stated_value(data: Mapping[str, Any], loc: Sequence[str | int]) -> Any:
    """The value `data` states at a pydantic error location (list items and union tags below a value
    are the value's), or _ABSENT."""
    value: Any = data
    for part in loc:
        if isinstance(value, Mapping):
            if part not in value:
                return _ABSENT
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            break
    return value


def _origin(layer: _Layer, path: tuple[str, ...], merged: Mapping[str, Any]) -> str:
    """How provenance names the source of a mode key: "set by scenario: services.parser"."""
    key = ".".join(path)
    if layer.origin == "env" and layer.names:
        return f"set by {layer.names.get(path, key)}"
    if layer.origin == "flag":
        if path == ("mode",):
            return "set by --mode"
        value: Any = merged
        for part in path:
            value = value[part]
        return f"set by --service {path[-1]}={value}"
    where = layer.doc.path.name if layer.origin == CONFIG_FILENAME and layer.doc is not None else layer.origin
    return f"set by {where}: {key}"


def _source(path: tuple[str, ...], layer: _Layer) -> str:
    """Where a key's value came from: `TVDB_X=5 (environment)`, `tvdb.yaml:3`, `scenario s.yaml:4`, `--flag`."""
    key = ".".join(path)
    if layer.origin == "env" and layer.shown and path in layer.shown:
        return layer.shown[path]
    if layer.doc is not None:
        return f"{key} in {layer.doc.path}:{layer.doc.line_of(path)}"
    return _FLAGS.get(key, "--" + key.replace("_", "-").replace(".", "-"))


def _explain(found: list[ConfigError | ScenarioError]) -> ConfigError | ScenarioError:
    """Every problem of one validation as one error, so a user fixes them all in one go (scenario ones by line)."""
    if len(found) == 1:
        return found[0]
    in_scenario = sorted((e for e in found if isinstance(e, ScenarioError)), key=lambda e: e.line or 0)
    elsewhere = sorted((e for e in found if not isinstance(e, ScenarioError)), key=_file_order)
    if not in_scenario:
        return ConfigError("\n".join(str(e) for e in elsewhere) + f"\n({len(elsewhere)} problems)")
    first, rest = in_scenario[0], in_scenario[1:]
    more = tuple(rest) + tuple(ScenarioError(str(e)) for e in elsewhere)
    return ScenarioError(first.message, path=first.path, line=first.line, key=first.key, more=more)


def _file_order(error: ConfigError) -> tuple[int, str, int]:
    """A file's problems in line order, after the environment's and the flags' (kept as found)."""
    import re

    where = re.match(r"(.+?):(\d+): ", str(error))
    return (1, where.group(1), int(where.group(2))) if where else (0, "", 0)


def _explain_one(err: ErrorDetails, origins: Mapping[tuple[str, ...], _Layer]) -> ConfigError | ScenarioError:
    loc = tuple(str(p) for p in err["loc"])
    key = dotted(err["loc"])
    msg = describe(err, Settings)
    wanted = expected(err, Settings)
    crossed = [tuple(str(p) for p in path) for path in cross_field_paths(err)]
    if crossed:  # reported at the key the check names first, or the one a stronger layer set
        rank = {CONFIG_FILENAME: 0, "scenario": 1, "env": 2, "flag": 3}
        stated = [p for p in crossed if p in origins]
        loc = max(stated, key=lambda p: rank[origins[p].origin]) if stated else crossed[0]
        key = ".".join(loc)
    layer = None
    for n in range(len(loc), 0, -1):
        layer = origins.get(loc[:n])
        if layer is not None:
            break
    if layer is None:  # a whole-section check (e.g. overlap vs max_tokens): blame the strongest source of a child key
        rank = {CONFIG_FILENAME: 0, "scenario": 1, "env": 2, "flag": 3}
        children = [(p, lay) for p, lay in origins.items() if p[: len(loc)] == loc]
        if children:
            path, layer = max(children, key=lambda c: rank[c[1].origin])
            loc = path[: len(loc)] if layer.origin == "env" else loc
    if not loc:  # a rule across several keys (e.g. reservation_ttl_s vs the timeouts): name where each came from
        sources = [_source(path, lay) for path, lay in sorted(origins.items()) if dotted(path) in msg]
        return ConfigError(f"configuration: {msg}" + (f" (set by {', '.join(sources)})" if sources else ""))
    if layer is None:
        return ConfigError(f"{key}: {msg}")
    if layer.origin == "scenario" and layer.doc is not None:
        return ScenarioError(msg, path=layer.doc.path, line=layer.doc.line_of(loc), key=key)
    if layer.doc is not None:
        where = f"{layer.doc.path}:{layer.doc.line_of(loc)}"
        return ConfigError(f"{where}: {key}: {msg}",
                           fix=f"edit {where}: {key} must be {wanted}" if wanted else None)
    if layer.origin == "env" and layer.shown:
        name = next((v for p, v in layer.shown.items() if p[: len(loc)] == loc or loc[: len(p)] == p), key)
        var = (layer.names or {}).get(loc, name.split("=", 1)[0])
        return ConfigError(f"{name}: {msg}", fix=f"set {var} to {wanted}, or unset it" if wanted else None)
    flag = _FLAGS.get(key, "--" + key.replace("_", "-").replace(".", "-"))
    return ConfigError(f"{flag}: {msg}")
