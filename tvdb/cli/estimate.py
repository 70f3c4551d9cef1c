"""Rendering of `tvdb run --estimate`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from tvdb.cli.output import Col, Format, Kind, TableData, clean, data, emit_table, make_console, print_table
from tvdb.money import format_usd
from tvdb.scenarios.patterns import as_named
from tvdb.words import counted

if TYPE_CHECKING:
    from tvdb.config import Settings
    from tvdb.scenarios.estimate import DocumentEstimate, Estimate
    from tvdb.scenarios.loader import LoadedScenario


def _status(d: DocumentEstimate) -> str:
    return d.status if not d.error_code else f"{d.status}: {d.error_code}"


def _reuse_note(est: Estimate) -> str:
    """What the summary line says of reuse: the documents that would make no calls, if any."""
    if not est.reused:
        return ""
    return (f"; {counted(est.reused, 'document')} would be reused from earlier runs (identical bytes and settings:"
            " no parse or embedding calls; `--fresh` sends them)")


def print_estimate(loaded: LoadedScenario, settings: Settings, *, fmt: Format, fresh: bool = False) -> int:
    """Print the forecast; returns 0 when it fits every budget, 3 when it does not."""
    from tvdb.clock import SystemClock
    from tvdb.ledger.budget import NUSD, how_to_fix
    from tvdb.scenarios.estimate import estimate
    from tvdb.scenarios.runner import check_runnable

    check_runnable(settings, loaded.scenario, need_keys=False)  # what the run would refuse, the estimate refuses too
    est = estimate(loaded, settings, SystemClock(), fresh=fresh)
    code = 0 if est.fits else 3
    base = loaded.path.parent
    cols = [Col("document", Kind.PATH, "path"), Col("status", Kind.WORD), Col("pages", Kind.NUM),
            Col("chunks", Kind.NUM), Col("tokens", Kind.NUM)]
    # named as the scenario names them, like the run's table and expectations (not the resolved file)
    values: list[list[object]] = [[as_named(d.path, base), _status(d), d.pages, d.chunks, d.tokens]
                                  for d in est.documents]
    rows: list[list[str | Text | None]] = [[str(v) for v in row] for row in values]
    docs = TableData(cols, rows, title=f"Estimate for scenario {clean(est.scenario)} (nothing spent, nothing written)",
                     values=values)
    console = make_console()
    if fmt in (Format.JSON, Format.CSV):
        emit_table(console, docs, fmt, json_obj={**est.as_json(base), "exit_code": code})
        return code
    plain = fmt is Format.PLAIN
    print_table(console, docs, plain=plain)
    by_stage = est.would_cost_nusd
    unknown = {stage for s, _ in est.unpriced for stage in (("parse",) if s == "llamaparse" else ("embed", "query"))}

    def usd(stage: str) -> str:
        return "unknown" if stage in unknown else format_usd(by_stage[stage] / 1e9)

    modes = ", ".join(f"{k} {v}" for k, v in est.modes.items())
    total = "unknown" if unknown else format_usd(sum(by_stage.values()) / 1e9)
    queries = est.requests.get("query", 0)
    kinds = [counted(est.requests["parse"], "parse request"), counted(est.requests["embed"], "embedding request")]
    if queries:
        kinds.append(counted(queries, "retrieval query request"))
    sent = ", ".join(kinds[:-1]) + " and " + kinds[-1]
    query_cost = f", retrieval queries {usd('query')}" if queries else ""
    console.print(
        f"The run would send {sent} "
        f"({modes}), worth {total} at live prices (parse {usd('parse')} for {counted(est.parse_pages, 'page')} = "
        f"{counted(est.parse_credits, 'LlamaParse credit')} at tier {est.parse_tier}, "
        f"embed {usd('embed')}{query_cost}); "
        f"real spend {format_usd(est.forecast.total_usd)}{_reuse_note(est)}.", markup=False,
    )
    for service, model in est.unpriced:
        blocked = any(service == s for s, _ in est.forecast.unpriced)
        console.print(Text.assemble(("✗", "red"), f" no known price for {service} ", data(model),
                                    ": real calls would be refused" if blocked else " (mock: shown as unknown)"))
    bcols = [Col("budget", Kind.WORD), Col("window", Kind.TEXT), Col("limit", Kind.MONEY), Col("used", Kind.MONEY),
             Col("reserved", Kind.MONEY), Col("this run", Kind.MONEY), Col("fits", Kind.WORD)]
    brows: list[list[str | Text | None]] = []
    for c in est.forecast.checks:
        row = c.as_dict()
        money = row["unit"] == "usd"
        suffix = "_usd" if money else ""
        cells: list[str | Text | None] = [format_usd(row[k + suffix]) if money else str(row[k])
                                          for k in ("limit", "used", "reserved", "requested")]
        brows.append([c.name, c.window, *cells, Text("yes", "green") if c.fits else Text("no", "red")])
    print_table(console, TableData(bcols, brows, title="Budgets"), plain=plain)
    for c in est.forecast.checks:
        if not c.fits:  # the run would be refused: say which budget, and how to let it through
            what = "budget" if c.unit == NUSD else "request limit"
            console.print(Text.assemble(("✗", "red"), f" would not fit the {c.name} {what}: {how_to_fix(c)}"))
    if not set(est.modes.values()) & {"real", "hybrid"}:  # not "spends $0": a real run may reuse everything
        # mock results are never reused by a real run: the documents reused here would be sent there
        real = ("in real mode it would spend the amount above" if not est.reused else
                "in real mode, which reuses no mock result, it would also send the reused documents: "
                "`--estimate --mode real` prices that")
        console.print(Text(f"No service runs in real mode, so this run spends nothing; {real}.", "dim"))
    if "hybrid" in est.modes.values():
        console.print(Text("Hybrid services are counted as if every call ran real (the most they can spend); "
                           "calls past a budget run local instead of being refused.", "dim"))
    return code
