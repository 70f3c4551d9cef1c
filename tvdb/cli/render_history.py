"""Rich rendering of run history: the run list, one run in detail, and a comparison of two runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tvdb.cli.output import Col, Format, Kind, TableData, clean, data, data_lines, emit_table, print_table
from tvdb.history.advise import Advice
from tvdb.history.compare import Comparison
from tvdb.history.detail import RunDetail
from tvdb.history.metrics import StageMetrics
from tvdb.history.store import RunSummary
from tvdb.ledger.prices import nusd_to_usd
from tvdb.money import format_usd as usd
from tvdb.money import format_usd_pair
from tvdb.words import counted


def ms(value: float | None) -> str:
    return "–" if value is None else (f"{value:.1f}" if value < 100 else f"{value:,.0f}")


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _nusd(value: int | None) -> str:
    return usd(None if value is None else nusd_to_usd(value))


def _status(r: RunSummary) -> str:
    verdict = {True: "passed", False: "failed"}.get(r.passed) if r.status == "finished" else None  # type: ignore[arg-type]
    return verdict or r.status


def runs_table(rows: Sequence[RunSummary]) -> TableData:
    # No cell is empty ("–" for none), so `--format plain | awk '{print $6}'` always reads the same column.
    cols = [Col("run_id", Kind.ID), Col("scenario", Kind.TEXT), Col("mode", Kind.WORD), Col("status", Kind.WORD),
            Col("docs", Kind.NUM, "documents"), Col("failed", Kind.NUM), Col("spent", Kind.MONEY, "spent_usd"),
            Col("would cost", Kind.MONEY, "would_cost_usd"), Col("duration", Kind.NUM, "duration_s"),
            Col("started (UTC)", Kind.ID, "started_at")]
    cells = [[r.run_id, r.scenario, r.mode, _status(r), str(r.documents), str(r.failed or "–"), usd(r.spent_usd),
              usd(r.would_cost_usd), duration(r.duration_s), (r.started_at or "–")[:16].replace("T", " ")]
             for r in rows]
    values = [[r.run_id, r.scenario, r.mode, _status(r), r.documents, r.failed, r.spent_usd, r.would_cost_usd,
               r.duration_s, r.started_at] for r in rows]
    return TableData(cols, cells, title="Runs (newest first)", values=values)


def print_runs(console: Console, rows: Sequence[RunSummary], fmt: Format = Format.TABLE) -> None:
    if not rows and fmt in (Format.TABLE, Format.PLAIN):
        console.print("No runs yet. Start one with: tvdb run scenarios/quickstart.yaml")
        return
    emit_table(console, runs_table(rows), fmt, json_obj={"runs": [r.as_json() for r in rows]})


def stage_table(stages: Sequence[StageMetrics], title: str | None = "Per stage") -> TableData:
    cols = [Col("stage", Kind.WORD), Col("docs", Kind.NUM), Col("p50 ms", Kind.NUM), Col("p95 ms", Kind.NUM),
            Col("attempts", Kind.NUM), Col("errors", Kind.TEXT), Col("retries", Kind.NUM),
            Col("call p95 ms", Kind.NUM), Col("would cost", Kind.MONEY)]
    rows: list[list[str | Text | None]] = []
    for s in stages:
        errors = str(s.errors) + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(s.errors_by_code.items())) + ")"
                                  if s.errors_by_code else "")
        rows.append([s.stage, str(s.documents or "–"), ms(s.p50_ms), ms(s.p95_ms), str(s.attempts), errors,
                     str(s.retries), ms(s.call_p95_ms), _nusd(s.would_cost_nusd) if s.attempts else "–"])
    return TableData(cols, rows, title=title)


def _document_stages(stages: Sequence[StageMetrics]) -> TableData:
    cols = [Col("stage", Kind.WORD), Col("ms", Kind.NUM), Col("attempts", Kind.NUM), Col("errors", Kind.NUM),
            Col("retries", Kind.NUM), Col("would cost", Kind.MONEY)]
    return TableData(cols, [[s.stage, ms(s.max_ms), str(s.attempts), str(s.errors), str(s.retries),
                             _nusd(s.would_cost_nusd) if s.attempts else "–"] for s in stages])


def print_run_detail(console: Console, detail: RunDetail, fmt: Format = Format.TABLE) -> None:
    """`tvdb runs show` as a table/plain text (json: the detail's `as_json`; csv: the per-stage table)."""
    if fmt in (Format.JSON, Format.CSV):
        emit_table(console, stage_table(detail.stages), fmt, json_obj=detail.as_json())
        return
    plain = fmt is Format.PLAIN
    r = detail.summary
    console.print(data(f"Run {r.run_id} · scenario {r.scenario} · mode {r.mode} · {_status(r)}", "bold"))
    console.print(f"Started {r.started_at} · duration {duration(r.duration_s)} · {counted(r.documents, 'document')} "
                  f"({r.complete} complete, {r.failed} failed, {r.reused} reused) · spent {usd(r.spent_usd)} · "
                  f"would cost {usd(r.would_cost_usd)} · {counted(r.calls, 'call')}, {counted(r.errors, 'error')}, "
                  f"{counted(r.retries, 'retry', 'retries')}")
    print_table(console, stage_table(detail.stages), plain=plain)
    for d in detail.documents:
        doc = d.document
        state = doc.state + (f": {doc.error_code}" if doc.error_code else "") + (" (reused)" if doc.reused_from else "")
        console.print(Text.assemble("\n", data(Path(doc.path).name, "bold"),
                                    f" · {state} · {counted(doc.pages, 'page')}, {counted(doc.chunks, 'chunk')},"
                                    f" {counted(doc.tokens, 'token')} · "
                                    f"correlation {doc.correlation_id}"))
        if doc.error_message:
            console.print(Text.assemble("  ", ("✗", "red"), " ", data_lines(doc.error_message)))
        for warning in doc.warnings:
            console.print(Text.assemble("  ", ("!", "yellow"), " ", data_lines(warning)))
        if d.stages:
            print_table(console, _document_stages(d.stages), plain=True)
        for e in d.events:
            console.print(Text.assemble(f"  {e.ts[11:23]}  {e.transition}",
                                        ("  " + clean(e.detail)) if e.detail else ""))
    if detail.run_calls:
        console.print(f"\n{counted(len(detail.run_calls), 'call')} served no single document (retrieval queries).")


def change_pct(a: float | None, b: float | None) -> str:
    """`+12%`, `-3.4%`, `same`, `new`: a change that rounds to zero is never shown as `-0%`."""
    if a is None or b is None:
        return "–"
    if a == b:
        return "same"
    if a == 0:
        return "new"
    value = (b - a) / a * 100
    return f"{value:+.0f}%" if abs(value) >= 10 else f"{value:+.1f}%" if abs(value) >= 0.05 else f"{value:+.2g}%"


def _change(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"({change_pct(a, b)})"


def _pair(fmt_one: Callable[[float | None], str], a: float | None, b: float | None) -> str:
    return f"{fmt_one(a)} → {fmt_one(b)}"


def _usd_pair(a: float | None, b: float | None) -> str:
    return " → ".join(format_usd_pair(a, b))


def _cost_pair(a: StageMetrics | None, b: StageMetrics | None) -> str:
    """A stage's cost at live prices, A → B; `–` for a run that made no call in it."""
    def value(m: StageMetrics | None) -> float | None:
        return None if m is None or m.would_cost_nusd is None else nusd_to_usd(m.would_cost_nusd)

    first, second = format_usd_pair(value(a), value(b))
    return f"{first if a and a.attempts else '–'} → {second if b and b.attempts else '–'}"


def _marks(*regressions: str | None) -> Text | str:
    return Text("▲", "bold red") if any(regressions) else ""


def comparison_tables(c: Comparison) -> tuple[TableData, TableData]:
    latency = TableData(
        [Col("stage", Kind.WORD), Col("p50 ms A → B", Kind.ID), Col("p95 ms A → B", Kind.ID),
         Col("Δ p95", Kind.WORD), Col("regressed", Kind.WORD, "regression")],
        [[s.stage, _pair(ms, s.a.p50_ms if s.a else None, s.b.p50_ms if s.b else None),
          _pair(ms, s.a.p95_ms if s.a else None, s.b.p95_ms if s.b else None),
          change_pct(s.a.p95_ms if s.a else None, s.b.p95_ms if s.b else None), _marks(s.regression)]
         for s in c.stages],
        title=f"Latency per stage (a regression: p95 up more than {c.threshold_pct:g}%)",
    )
    calls = TableData(
        [Col("stage", Kind.WORD), Col("error rate A → B", Kind.ID), Col("retry rate A → B", Kind.ID),
         Col("would cost A → B", Kind.ID), Col("regressed", Kind.WORD, "regression")],
        [[s.stage, _pair(pct, s.a.error_rate if s.a else None, s.b.error_rate if s.b else None),
          _pair(pct, s.a.retry_rate if s.a else None, s.b.retry_rate if s.b else None),
          _cost_pair(s.a, s.b),
          _marks(s.error_regression, s.retry_regression)]
         for s in c.stages if (s.a and s.a.attempts) or (s.b and s.b.attempts)],
        title="Calls per stage (a regression: error or retry rate up)",
    )
    return latency, calls


def _documents_table(c: Comparison) -> TableData:
    cols = [Col("document", Kind.PATH), Col("chunks A → B", Kind.ID), Col("cosine mean", Kind.NUM),
            Col("cosine min", Kind.NUM), Col("vectors", Kind.TEXT)]
    rows: list[list[str | Text | None]] = [
        [Path(d.path).name, f"{d.chunks_a} → {d.chunks_b}",
         "–" if d.cosine_mean is None else f"{d.cosine_mean:.4f}",
         "–" if d.cosine_min is None else f"{d.cosine_min:.4f}", d.note] for d in c.documents]
    return TableData(cols, rows, title="Same documents")


def print_comparison(console: Console, c: Comparison, fmt: Format = Format.TABLE, *, exit_code: int = 0) -> None:
    """`tvdb runs compare` (json: the comparison's `as_json` with the command's `exit_code`, as every
    --json document carries it; csv: the latency table)."""
    latency, calls = comparison_tables(c)
    if fmt in (Format.JSON, Format.CSV):
        emit_table(console, latency, fmt, json_obj={**c.as_json(), "exit_code": exit_code})
        return
    plain = fmt is Format.PLAIN
    a, b = c.a, c.b
    console.print(data(f"A {a.run_id} · {a.scenario} · {a.mode} · {_status(a)}"))
    console.print(data(f"B {b.run_id} · {b.scenario} · {b.mode} · {_status(b)}"))
    print_table(console, latency, plain=plain)
    if calls.rows:
        print_table(console, calls, plain=plain)
    console.print(f"Cost: spent {_usd_pair(a.spent_usd, b.spent_usd)} · would cost "
                  f"{_usd_pair(a.would_cost_usd, b.would_cost_usd)} {_change(a.would_cost_usd, b.would_cost_usd)}")
    console.print(f"Chunks {a.chunks} → {b.chunks} · documents {a.documents} → {b.documents} · "
                  f"failed {a.failed} → {b.failed}")
    ra, rb = c.recall_a, c.recall_b
    if ra.total or rb.total:
        console.print(f"Retrieval recall {ra.passed}/{ra.total} → {rb.passed}/{rb.total}")
    if c.documents:
        print_table(console, _documents_table(c), plain=plain)
    if c.regressions:
        console.print(Text("Regressions:", "bold red"))
        for line in c.regressions:
            console.print(Text.assemble("  ", ("▲", "bold red"), " ", data(line)))
    else:
        console.print("No regressions.")


def print_advice(console: Console, items: Sequence[Advice], fmt: Format = Format.TABLE) -> None:
    """`tvdb cost advise`: one row per kind of saving (json: `{"advice": [...], totals}`)."""
    cols = [Col("advice", Kind.TEXT), Col("found", Kind.NUM, "occurrences"), Col("saved", Kind.MONEY, "saved_usd"),
            Col("at live prices", Kind.MONEY, "saved_would_cost_usd"), Col("details", Kind.TEXT, "detail")]
    rows: list[list[str | Text | None]] = [[a.title, str(a.occurrences), _nusd(a.saved_nusd),
                                            _nusd(a.saved_would_cost_nusd), a.detail] for a in items]
    values = [[a.title, a.occurrences, nusd_to_usd(a.saved_nusd), nusd_to_usd(a.saved_would_cost_nusd), a.detail]
              for a in items]
    doc = {"advice": [a.as_json() for a in items]}
    emit_table(console, TableData(cols, rows, title="Savings found in the ledger", values=values), fmt, json_obj=doc)


