"""`tvdb doctor`: is this machine ready for the configured modes? (checks in tvdb.services.doctor)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from tvdb.cli.common import ServiceOption, service_flags, settings_for
from tvdb.cli.output import (
    Col,
    Format,
    FormatOption,
    JsonOption,
    Kind,
    TableData,
    emit_table,
    make_console,
    pick_format,
)
from tvdb.domain import Mode
from tvdb.errors import EXIT_EXPECTATION_FAILED, EXIT_OK, EXIT_USAGE, ConfigError

if TYPE_CHECKING:
    from tvdb.services.doctor import Check

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "info": "dim"}
_MARK = {"ok": "✓", "warn": "!", "fail": "✗", "info": "·"}


def doctor(
    ctx: typer.Context,
    mode: Annotated[Mode | None, typer.Option("--mode", "-m", help="Check for this mode instead.")] = None,
    service: ServiceOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database and uploads live.")] = None,
) -> None:
    """Check that what the configured mode needs is there: config, data dir, database schema, keys
    (masked), the offline tokenizer, each service's mode, health and latency, today's budget and limits.

    Exit codes: 0 ready; 1 something the configured mode needs is missing (each failing line says
    the fix); 2 the configuration itself is invalid.

    \b
    Examples:
      tvdb doctor
      tvdb doctor --mode real --json
      OPENAI_BASE_URL=http://127.0.0.1:8089/v1 tvdb doctor --service embedder=hybrid
    """
    import asyncio

    from tvdb import db
    from tvdb.clock import SystemClock
    from tvdb.services.doctor import Check, diagnose

    chosen = pick_format(fmt, as_json)
    checks: list[Check] = []
    code = EXIT_OK
    try:
        settings = settings_for(ctx, {"mode": mode, "services": service_flags(service), "data_dir": data_dir})
    except ConfigError as exc:
        checks.append(Check("config", "fail", str(exc), exc.fix or "fix the file, variable or flag the message names"))
        code = EXIT_USAGE
    else:
        where = (ctx.obj or {}).get("config") or ("tvdb.yaml" if _has_yaml() else None)
        checks.append(Check("config", "ok", f"valid ({where})" if where else "valid (no tvdb.yaml: built-in defaults)"))
        checks += asyncio.run(diagnose(settings, SystemClock(), storage=db))
        if any(c.status == "fail" for c in checks):
            code = EXIT_EXPECTATION_FAILED
    _render(checks, code, chosen)
    raise typer.Exit(code)


def _has_yaml() -> bool:
    return (Path.cwd() / "tvdb.yaml").is_file()


def _one_line(text: str) -> str:
    return " · ".join(line.strip() for line in text.splitlines() if line.strip())


def _render(checks: list[Check], code: int, fmt: Format) -> None:
    cols = [Col("", Kind.WORD, key="status"), Col("check", Kind.TEXT, key="name"), Col("detail", Kind.TEXT),
            Col("fix", Kind.TEXT)]
    # a cell escapes control characters (a file name's \n would forge rows), so a multi-line detail
    # (a config file's problems, one a line) is joined here instead of printing a literal \x0a
    rows: list[list[Any]] = [[Text(_MARK[c.status], _STYLE[c.status]), c.name, _one_line(c.detail), c.fix or ""]
                             for c in checks]
    table = TableData(cols, rows, title="tvdb doctor", values=[[c.status, c.name, c.detail, c.fix] for c in checks])
    console = make_console()
    if fmt in (Format.JSON, Format.CSV):
        emit_table(console, table, fmt, json_obj={"ok": code == EXIT_OK, "exit_code": code,
                                                   "checks": [c.as_json() for c in checks]})
        return
    if not any(c.fix for c in checks):  # an empty "fix" column only costs width
        table = TableData(cols[:3], [r[:3] for r in rows], title=table.title)
    emit_table(console, table, fmt)
    failed = sum(c.status == "fail" for c in checks)
    checks_failed = f"{failed} check{'s' if failed != 1 else ''} failed"
    verdict = Text("ready", "bold green") if not failed else Text(checks_failed, "bold red")
    console.print(Text.assemble(verdict, f"  (exit code {code})"))


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
