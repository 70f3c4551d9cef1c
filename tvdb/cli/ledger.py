"""`tvdb ledger migrate --to postgresql://…`: move a SQLite ledger into PostgreSQL (issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tvdb.cli.common import plain_console, settings_for
from tvdb.cli.output import JsonOption

app = typer.Typer(help="The tvdb database as a whole: move it from the SQLite file to PostgreSQL.",
                  no_args_is_help=True)

MIGRATE_HELP = """Copy the SQLite database (runs, jobs, vectors, the usage ledger, reservations, alerts)
into a PostgreSQL database, so that several machines can share one budget.

Every row keeps its key, so running it again copies nothing twice (rows added to the SQLite file
since are copied). Before COMMIT every table is checked: every source row is there and the money
columns (nano-USD) sum the same on both sides; a mismatch rolls the whole copy back. The password
in the URL is never printed. Afterwards set `database_url` (or TVDB_DATABASE_URL) to the same URL.

\b
Examples:
  tvdb ledger migrate --to postgresql://tvdb:secret@db.internal:5432/tvdb
  TVDB_DATABASE_URL=postgresql://… tvdb ledger migrate --json   # keeps the password off the command line
  tvdb ledger migrate --from old/.tvdb/tvdb.db --to "$TVDB_DATABASE_URL"
"""


@app.command("migrate", help=MIGRATE_HELP, short_help="Copy the SQLite ledger into PostgreSQL (checked).")
def migrate(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="URL", help="The PostgreSQL database (default: database_url / TVDB_DATABASE_URL).")] = None,
    source: Annotated[Path | None, typer.Option(
        "--from", metavar="PATH", help="The SQLite file (default: the data dir's tvdb.db).")] = None,
    as_json: JsonOption = False,
) -> None:
    from tvdb.cli.output import Col, Kind, TableData, emit_table, pick_format
    from tvdb.db import copy_to_pg
    from tvdb.errors import ConfigError
    from tvdb.redaction import redact_url
    from tvdb.storage.postgres import is_postgres_url

    settings = settings_for(ctx)
    if to is None and settings.database_url is not None:
        to = settings.database_url.get_secret_value()
    if to is None:
        raise ConfigError("give --to postgresql://user:password@host:5432/tvdb, or set TVDB_DATABASE_URL")
    if not is_postgres_url(to):
        raise ConfigError(f"--to {redact_url(to)!r}: expected a PostgreSQL URL such as "
                          "postgresql://user:password@host:5432/tvdb")
    path = source or settings.database_path
    if not path.is_file():
        raise ConfigError(f"no SQLite database at {path}: point --from (or --data-dir) at the tvdb.db to copy")
    report = copy_to_pg(path, to)
    table = TableData(
        columns=[Col("table", Kind.ID), Col("source rows", Kind.NUM), Col("copied", Kind.NUM),
                 Col("already there", Kind.NUM), Col("checked sums (nano-USD)", Kind.TEXT, key="sums_nusd")],
        rows=[[t.table, str(t.source_rows), str(t.copied), str(t.already_there),
               ", ".join(f"{k}={v:,}" for k, v in t.sums_nusd.items())] for t in report.tables],
        title=f"{report.source} → {report.target}: {report.copied} rows copied, counts and sums checked",
    )
    emit_table(plain_console(), table, pick_format(None, as_json), json_obj=report.as_dict())

