"""`tvdb doctor`: is this machine ready for the configured modes? One check per line, each failing
line with its fix. Nothing is spent and nothing is written except the data dir (created if missing).

    config        valid (no tvdb.yaml is fine)                      checked by the caller (CLI)
    data dir      writable, created if missing
    database      schema current (no database yet is fine: created on first use); with database_url,
                  the PostgreSQL connection (password masked), server version and round trip
    keys          present, masked (`sk-…a1b2`); a failure only when a service runs real
    tokenizer     tiktoken's cl100k_base vocabulary loads offline
    <service>     effective mode and why; health and latency (probed only with a key, never in mock)
    budget        today's real spend and what is left; hourly request limits

`status` is ok | warn | fail | info; only `fail` makes the command exit non-zero: what the
configured mode needs is missing (a key for a real service, an unhealthy real service, no budget
left for a real service, an unloadable tokenizer, an unwritable data dir).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from tvdb.clock import Clock
from tvdb.config import Settings
from tvdb.domain import Mode
from tvdb.services.health import Health
from tvdb.services.modes import ROLE_INFO, ROLES, Role, api_key, mask_key, service_mode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tvdb.http import AsyncBaseTransport
    from tvdb.storage import Database

Status = Literal["ok", "warn", "fail", "info"]


class DatabaseAccess(Protocol):
    """How the doctor reaches the database (given by the CLI: `tvdb.db`, which knows the schema)."""

    def open_db(self, path: Path | str, /) -> Database:
        """Open the database at `path` (":memory:" for an empty one), migrating it."""
        ...

    def schema_status(self, path: Path, /) -> tuple[list[str], list[str]]:
        """(pending, unknown) migration names, read-only; raises sqlite3.Error."""
        ...

    def open_pg(self, url: str, /) -> Database:
        """Connect to the PostgreSQL database at `url`, migrating it; raises StorageError / ConfigError."""
        ...

    def pg_schema_status(self, url: str, /) -> tuple[str, list[str], list[str]]:
        """(server version, pending, unknown) of the PostgreSQL database at `url`, read-only; raises
        StorageError (unreachable) or ConfigError (the postgres extra is missing)."""
        ...


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report. `fix` says what to do when the status is fail or warn."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    latency_ms: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix,
                "latency_ms": self.latency_ms}


async def diagnose(
    settings: Settings, clock: Clock, *, storage: DatabaseAccess,
    transports: Mapping[str, AsyncBaseTransport] | None = None,
) -> list[Check]:
    """Every check after the config one, in report order."""
    url = settings.database_url.get_secret_value() if settings.database_url is not None else None
    database = _database(storage, settings.database_path) if url is None else _postgres(storage, url)
    checks = [_data_dir(settings.data_dir), database]
    modes = {role: service_mode(settings, role) for role in ROLES}
    checks += [_key(settings, role, modes[role][0]) for role in ROLES]
    checks.append(_tokenizer(settings))
    for role in ROLES:
        transport = (transports or {}).get(ROLE_INFO[role].service)
        checks.append(await _service(settings, role, *modes[role], clock, transport))
    if database.status != "fail":  # no budget to read from a database that cannot be reached
        checks += _budget(storage, settings, clock, {r: m for r, (m, _) in modes.items()})
    return checks


def _data_dir(path: Path) -> Check:
    try:
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data dir", "fail", f"{path}: not writable ({exc.strerror or exc})",
                     "point --data-dir or TVDB_DATA_DIR at a directory you can write")
    return Check("data dir", "ok", f"{path} is writable" + (" (created)" if created else ""))


def _database(storage: DatabaseAccess, path: Path) -> Check:
    import sqlite3

    if not path.exists():
        return Check("database", "ok", f"{path} does not exist yet: it is created on first use")
    try:
        pending, unknown = storage.schema_status(path)
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path}: cannot be read ({exc})",
                     "move the file away (it may not be a tvdb database) or point TVDB_DB_PATH elsewhere")
    if unknown:
        return Check("database", "fail", f"{path}: written by a newer tvdb (unknown migrations {', '.join(unknown)})",
                     "upgrade tvdb, or use another --data-dir")
    if pending:
        return Check("database", "warn", f"{path}: {len(pending)} schema migrations pending ({', '.join(pending)})",
                     "nothing to do: the next tvdb command applies them")
    return Check("database", "ok", f"{path}: schema current")


def _postgres(storage: DatabaseAccess, url: str) -> Check:
    """The PostgreSQL ledger: reachable with these credentials, its server version and schema state,
    the connection's round trip. The URL is shown with its password masked."""
    import time

    from tvdb.errors import ConfigError, StorageError
    from tvdb.redaction import redact_url

    shown = redact_url(url)
    started = time.perf_counter()
    try:
        version, pending, unknown = storage.pg_schema_status(url)
    except StorageError as exc:
        return Check("database", "fail", f"{shown}: {exc.reason}", exc.fix)
    except ConfigError as exc:
        return Check("database", "fail", str(exc),
                     "pip install -e '.[postgres]' (in the tvdb checkout), or unset TVDB_DATABASE_URL")
    ms = (time.perf_counter() - started) * 1000
    where = f"{shown} (PostgreSQL {version})"
    if unknown:
        return Check("database", "fail", f"{where}: written by a newer tvdb (unknown migrations {', '.join(unknown)})",
                     "upgrade tvdb on this machine: every machine sharing the ledger needs the same version", ms)
    if pending:
        return Check("database", "warn", f"{where}: {len(pending)} schema migrations pending",
                     "nothing to do: the next tvdb command applies them", ms)
    return Check("database", "ok", f"{where}: connected, schema current", latency_ms=ms)


def _key(settings: Settings, role: Role, mode: Mode) -> Check:
    info = ROLE_INFO[role]
    key = api_key(settings, role)
    name = f"key {info.key_env}"
    if key is not None:
        return Check(name, "ok", f"set ({mask_key(key)})")
    fix = f"set {info.key_env} (or {info.key_setting} in tvdb.yaml)"
    if mode is Mode.REAL:
        return Check(name, "fail", f"not set, and the {role} runs real", fix + f", or run --service {role}=mock")
    if mode is Mode.HYBRID:
        return Check(name, "warn", f"not set: the {role} runs hybrid, so every call will run local", fix)
    return Check(name, "info", f"not set (not needed: the {role} runs mock)")


def _tokenizer(settings: Settings) -> Check:
    from tvdb.catalog import embedding_model
    from tvdb.errors import TokenizerUnavailable
    from tvdb.tokens import cache_dir_description, cached_vocabulary, get_encoding

    encoding = embedding_model(settings.embedding.model).encoding
    where = cached_vocabulary(encoding)
    if where is None:
        return Check("tokenizer", "fail", f"tiktoken's {encoding} vocabulary is not cached "
                     f"({cache_dir_description()}): offline, nothing can be chunked",
                     "export TIKTOKEN_CACHE_DIR=$PWD/../shared/tiktoken_cache from the checkout's root (a folder "
                     "holding tiktoken's cache file), "
                     "or run once with network access")
    try:
        get_encoding(encoding)
    except TokenizerUnavailable as exc:
        return Check("tokenizer", "fail", str(exc), "replace the damaged cache file")
    return Check("tokenizer", "ok", f"{encoding} loads offline ({where})")


async def _service(
    settings: Settings, role: Role, mode: Mode, why: str, clock: Clock, transport: AsyncBaseTransport | None,
) -> Check:
    from tvdb.services.factory import PROBES

    info = ROLE_INFO[role]
    name = f"{role} ({info.service})"
    said = f"mode {mode}" + ("" if why == f"mode {mode}" else f" ({why})")
    if mode is Mode.MOCK:
        return Check(name, "ok", f"{said}: local, no network")
    key = api_key(settings, role)
    if key is None:
        status: Status = "fail" if mode is Mode.REAL else "warn"
        return Check(name, status, f"{said}: no {info.key_env}, so not probed",
                     f"set {info.key_env}" + (" (hybrid runs local until then)" if mode is Mode.HYBRID else ""))
    health: Health = await PROBES[role](settings, key, clock, transport)()
    took = f" in {health.latency_ms:.0f} ms" if health.latency_ms is not None else ""
    tried = f" (tried {health.tried})" if health.tried else ""
    detail = f"{said}: " + ("healthy" if health.healthy else "unhealthy") + f", {health.detail}{took}{tried}"
    if health.healthy:
        return Check(name, "ok", detail, latency_ms=health.latency_ms)
    where = "OPENAI_BASE_URL" if role == "embedder" else "LLAMA_CLOUD_BASE_URL"
    fix = f"check the network, {info.key_env} and {where}"
    if mode is Mode.HYBRID:
        return Check(name, "warn", detail, fix + " (hybrid runs local meanwhile)", health.latency_ms)
    return Check(name, "fail", detail, fix + f", or run hybrid: --service {role}=hybrid", health.latency_ms)


def _budget(storage: DatabaseAccess, settings: Settings, clock: Clock, modes: dict[Role, Mode]) -> list[Check]:
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.money import format_usd
    from tvdb.services.factory import budget_settings

    path = settings.database_path
    if settings.database_url is not None:
        db = storage.open_pg(settings.database_url.get_secret_value())
    else:
        db = storage.open_db(path) if path.exists() else storage.open_db(":memory:")
    try:
        forecast = LedgerBudget(db, budget_settings(settings), clock).forecast([])
    finally:
        db.close()
    out = []
    real = [r for r, m in modes.items() if m is Mode.REAL]
    for check in forecast.checks:
        if check.unit == "nusd":
            name = f"{check.name} budget"
            detail = (f"{check.window}: {format_usd(check.used / 1e9)} spent, {format_usd(check.reserved / 1e9)} "
                      f"reserved, {format_usd(check.remaining / 1e9)} left of {format_usd(check.limit / 1e9)}")
            fix = ("raise daily_budget_usd (TVDB_DAILY_BUDGET_USD) or wait for tomorrow" if check.name == "daily"
                   else "raise budget.max_usd (--max-usd)")
        else:
            name = check.name
            detail = f"{check.used} real requests in the last hour, {check.reserved} in flight, limit {check.limit}"
            fix = f"raise limits.{check.name.split(' ')[-1]}_requests_per_hour or wait for slots to free"
        if check.remaining > 0:
            out.append(Check(name, "ok", detail))
        elif real:
            out.append(Check(name, "fail", detail + ": real calls will be refused", fix))
        else:
            out.append(Check(name, "warn", detail + ": hybrid calls will run local", fix))
    for service, limit in (("openai", settings.limits.openai_requests_per_hour),
                           ("llamaparse", settings.limits.llamaparse_requests_per_hour)):
        if limit is None:
            out.append(Check(f"hourly {service}", "info", "no hourly request limit (limits."
                             f"{service}_requests_per_hour)"))
    return out
