"""What every command shares: settings from the global options, the ledger, the clock, consoles."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from tvdb.config import Settings
    from tvdb.scenarios.loader import LoadedScenario
    from tvdb.storage import Database

NowOption = Annotated[str | None, typer.Option("--now", hidden=True, help="Act as of this UTC instant.")]
ServiceOption = Annotated[list[str] | None, typer.Option(
    "--service", "-s", metavar="SERVICE=MODE",
    help="Mode of one service, beating --mode: parser=real, embedder=hybrid (repeatable).")]


def service_flags(values: list[str] | None) -> dict[str, str] | None:
    """`["parser=real", "embedder=mock"]` → `{"parser": "real", "embedder": "mock"}` (the `services:` layer).

    Raises ConfigError naming the flag for a malformed entry or an unknown service or mode."""
    from tvdb.domain import Mode
    from tvdb.errors import ConfigError
    from tvdb.services.modes import ROLES

    if not values:
        return None
    out: dict[str, str] = {}
    modes = [str(m) for m in Mode]
    for value in values:
        role, sep, mode = (part.strip() for part in value.partition("="))
        if not sep or role not in ROLES or mode not in modes:
            raise ConfigError(f"--service {value!r}: expected SERVICE=MODE with SERVICE one of {', '.join(ROLES)} "
                              f"and MODE one of {', '.join(modes)} (e.g. --service parser=real)")
        out[role] = mode
    return out


def settings_for(ctx: typer.Context, flags: dict[str, Any] | None = None,
                 loaded: LoadedScenario | None = None) -> Settings:
    """Settings for this command: defaults < tvdb.yaml (or --config) < scenario < environment < flags."""
    from rich.text import Text

    from tvdb.cli.output import clean, make_console, register_secrets
    from tvdb.config import read_dotenv, resolve_settings, unknown_env_vars

    obj = ctx.obj or {}
    dotenv_path = Path.cwd() / ".env"
    dotenv = read_dotenv(dotenv_path) if dotenv_path.is_file() else {}
    for warning in unknown_env_vars(os.environ, {k: v for k, v in dotenv.items() if k not in os.environ}):
        make_console(stderr=True).print(Text.assemble(("warning:", "yellow"), " ", clean(warning)), soft_wrap=True)
    flags = dict(flags or {})
    if flags.get("data_dir") is None:
        flags["data_dir"] = obj.get("data_dir")
    settings = resolve_settings(
        cwd=Path.cwd(), environ=os.environ, config_file=obj.get("config"), flags=flags,
        scenario=loaded.scenario.settings_layer() if loaded else None,
        scenario_doc=loaded.source if loaded else None,
    )
    register_secrets(obj.get("secrets"), settings.secret_values())  # from tvdb.yaml and .env too: masked
    return settings


def open_ledger(ctx: typer.Context) -> tuple[Settings, Database]:
    """The settings and the database they name (PostgreSQL with `database_url`, else the SQLite file)."""
    from tvdb.db import open_storage

    settings = settings_for(ctx)
    return settings, open_storage(settings)


@contextmanager
def option_errors(ctx: typer.Context) -> Iterator[None]:
    """Re-raise a ConfigError that starts by naming one of this command's options (`--by: …`) as an
    OptionError, so `--json` carries `command` and `param` as click's usage errors do."""
    from tvdb.errors import ConfigError, OptionError

    try:
        yield
    except OptionError:
        raise
    except ConfigError as exc:
        name = str(exc).partition(":")[0]
        opts = {o for p in ctx.command.params for o in getattr(p, "opts", ())}
        if name not in opts:
            raise
        raise OptionError(str(exc), command=ctx.command_path, param=name, fix=exc.fix) from exc


def now_or(now: str | None) -> dt.datetime:
    """The current time, or the hidden `--now` (reproducible reports and tests); naive = UTC.

    Raises ConfigError for an unreadable or out-of-range `--now`."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    from tvdb.errors import ConfigError
    from tvdb.ledger.periods import check_instant

    try:
        value = dt.datetime.fromisoformat(now)
    except ValueError:
        raise ConfigError(f"--now: {now!r} is not an ISO 8601 datetime (e.g. 2026-11-29T12:00:00)") from None
    return check_instant(value if value.tzinfo else value.replace(tzinfo=dt.UTC), "--now", now)


def plain_console() -> Console:
    from tvdb.cli.output import make_console

    # markup off: names, reasons and versions are data, and "[Errno 111]" or "[x]" must print as is
    return make_console(markup=False)
