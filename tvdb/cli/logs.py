"""`tvdb logs`: every event and call of one job (--correlation-id) or one run (RUN or --run), in time order."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from tvdb.cli.common import plain_console, settings_for


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LOGS_HELP = """Every job event and service call of one job or one run, across stages, in time order.

--log-format json prints one JSON object per line (JSON Lines), each with ts, kind (event | call),
run_id, correlation_id, job_id, stage and message, plus the event's states or the call's service,
attempt, status, error code, latency, units and cost. --json prints the same entries as one JSON
object, {"entries": [...]}. Configured keys and anything key-shaped are masked in every field.

\b
Examples:
  tvdb logs 20261129-0950
  tvdb logs --correlation-id 3fa2c1d0 --log-format json | jq -c 'select(.kind == "call")'
  tvdb logs --run 20261129-0950 --json | jq '.entries | length'
"""


def logs(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(
        metavar="[RUN]", show_default=False,
        help="A run id (or a unique prefix), as `tvdb runs show RUN` takes it; the same as --run.")] = None,
    correlation_id: Annotated[str | None, typer.Option(
        "--correlation-id", metavar="ID", help="One job's correlation ID (or a unique prefix).")] = None,
    run: Annotated[str | None, typer.Option("--run", metavar="RUN", help="A run id (or a unique prefix).")] = None,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="text (default) or json (JSON Lines).")
                          ] = LogFormat.TEXT,
    as_json: Annotated[bool, typer.Option(
        "--json", help='One JSON object, {"entries": [...]} (--log-format json streams JSON Lines).')] = False,
) -> None:
    import json
    import sys

    from tvdb.cli.output import clean, stdout_json
    from tvdb.db import open_storage
    from tvdb.history.store import RunStore
    from tvdb.history.timeline import timeline

    if run_id is not None and run is not None and run_id != run:
        raise typer.BadParameter(f"give the run once: {run_id} or --run {run}", param_hint="RUN")
    run = run if run is not None else run_id
    if (correlation_id is None) == (run is None):
        raise typer.BadParameter("give a run (tvdb logs RUN, or --run RUN) or --correlation-id ID (one of them)",
                                 param_hint="RUN")
    settings = settings_for(ctx)
    secrets = [s.get_secret_value() for s in (settings.openai_api_key, settings.llama_cloud_api_key,
                                             settings.signing_secret) if s is not None]
    entries = timeline(RunStore(open_storage(settings)), run=run, correlation_id=correlation_id,
                       secrets=secrets)
    if as_json:
        stdout_json({"entries": [e.as_json() for e in entries]})
        return
    if log_format is LogFormat.JSON:
        sys.stdout.writelines(json.dumps(e.as_json(), ensure_ascii=False) + "\n" for e in entries)
        return
    console = plain_console()
    # measured as printed: an escaped control character (`\x1b`) is wider than the character it shows
    width = max((len(clean(e.document or "")) for e in entries), default=0)
    for e in entries:
        who = e.correlation_id[:12] if e.correlation_id else "run"
        # the document a job's line belongs to, as the run's table names it (a correlation id alone says nothing)
        console.print(f"{e.ts[:23].replace('T', ' ')}  {who:<12}  {clean(e.document or ''):<{width}}  "
                      f"{(e.stage or e.kind):<6}  {e.message}")


def register(app: typer.Typer) -> None:
    app.command("logs", help=LOGS_HELP)(logs)  # short help: tvdb.cli.lazy.COMMANDS
