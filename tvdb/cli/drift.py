"""`tvdb cassette drift`: a thin command over tvdb.recording.drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tvdb.cli.common import plain_console, settings_for
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


def drift(
    ctx: typer.Context,
    cassettes: Annotated[list[Path], typer.Argument(metavar="CASSETTE", help="Cassette files to check.")],
    sample: Annotated[int, typer.Option("--sample", "-n", min=0, max=1000,
                                        help="Recorded requests replayed per cassette.")] = 3,
    max_usd: Annotated[float | None, typer.Option(
        "--max-usd", min=0.0, help="Hard cap for the whole check: refused before any request if the "
                                   "sample's estimate is over it (default: budget.max_usd; the daily budget "
                                   "applies too).")] = None,
    min_cosine: Annotated[float, typer.Option(
        "--min-cosine", min=-1.0, max=1.0, help="Lowest cosine similarity of a vector with the recorded one.")] = 0.999,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Choose another (still stable) sample.")] = 0,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the ledger lives.")] = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
) -> None:
    """Replay a small, stable sample of each cassette's OpenAI embeddings requests against the live
    service (or OPENAI_BASE_URL, e.g. `tvdb emulate`) and compare each answer with the recorded one:
    status, response headers (names; volatile ones such as date and x-ratelimit-* ignored), JSON
    schema by path, usage units, and the cosine of each vector with the recorded one.

    Every request is reserved in the budget before it is sent and ledgered (provenance "drift
    canary", a run id drift-…). LlamaParse interactions and recorded 429/5xx answers are reported
    as skipped, with the reason.

    Exit codes: 0 nothing drifted; 1 an interaction drifted or failed; 2 bad usage, a refused
    cassette or no OPENAI_API_KEY; 3 a budget (--max-usd, daily) refused the check.

    \b
    Examples:
      tvdb cassette drift cassettes/*.yaml --sample 3 --max-usd 0.05
      tvdb cassette drift cassettes/nightly.yaml --json
    """
    from tvdb.clock import SystemClock
    from tvdb.money import format_usd
    from tvdb.recording.drift import DriftOptions, check_drift

    chosen = pick_format(fmt, as_json)
    settings = settings_for(ctx, {"data_dir": data_dir})
    report = check_drift(cassettes, settings, DriftOptions(sample=sample, max_usd=max_usd, min_cosine=min_cosine,
                                                           seed=seed), clock=SystemClock())
    cols = [Col("cassette", Kind.PATH), Col("#", Kind.NUM, key="index"), Col("request", Kind.TEXT),
            Col("status", Kind.WORD), Col("result", Kind.WORD), Col("reasons", Kind.TEXT)]
    rows = [[o.cassette, str(o.index), o.request, o.status, o.result, "; ".join(o.reasons) or "–"]
            for o in report.outcomes]
    emit_table(make_console(), TableData(cols, rows, title="Cassette drift"), chosen, json_obj=report.as_json())
    if chosen in (Format.TABLE, Format.PLAIN):
        t = report.totals()
        plain_console().print(f"{t['ok']} ok, {t['drifted']} drifted, {t['error']} failed, {t['skipped']} skipped; "
                              f"spent {format_usd(report.spent_nusd / 1e9)} (run {report.run_id})", soft_wrap=True)
    if report.refused is not None:  # the report is out; the refusal still decides the exit code (3)
        report.refused.reported_as_json = chosen is Format.JSON  # type: ignore[attr-defined]
        raise report.refused
    raise typer.Exit(1 if report.drifted else 0)
