"""Rich rendering of run history: the run list, one run in detail, and a comparison of two runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tvdb.cli.render_cost import usd
from tvdb.history.compare import Comparison
from tvdb.history.detail import RunDetail
from tvdb.history.metrics import StageMetrics
from tvdb.history.store import RunSummary
from tvdb.ledger.prices import nusd_to_usd


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


def print_runs(console: Console, rows: Sequence[RunSummary]) -> None:
    if not rows:
        console.print("No runs yet. Start one with: tvdb run scenarios/quickstart.yaml")
        return
    table = Table(title="Runs (newest first)", title_justify="left")
    table.add_column("run_id", no_wrap=True, min_width=22)  # copied into `tvdb resume`, so never cut
    table.add_column("scenario", overflow="fold")
    table.add_column("mode")
    table.add_column("status")
    for col in ("docs", "spent", "would cost", "duration"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("started (UTC)", no_wrap=True)
    for r in rows:
        docs = f"{r.documents}" + (f" ({r.failed} failed)" if r.failed else "")
        table.add_row(r.run_id, r.scenario, r.mode, _status(r), docs, usd(r.spent_usd), usd(r.would_cost_usd),
                      duration(r.duration_s), (r.started_at or "")[:16].replace("T", " "))
    console.print(table)


def _stage_table(title: str, stages: Sequence[StageMetrics]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    for col in ("docs", "p50 ms", "p95 ms", "attempts", "errors", "retries", "call p95 ms", "would cost"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in stages:
        errors = str(s.errors) + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(s.errors_by_code.items())) + ")"
                                  if s.errors_by_code else "")
        table.add_row(s.stage, str(s.documents or "–"), ms(s.p50_ms), ms(s.p95_ms), str(s.attempts), errors,
                      str(s.retries), ms(s.call_p95_ms), _nusd(s.would_cost_nusd) if s.attempts else "–")
    return table


def print_run_detail(console: Console, detail: RunDetail) -> None:
    r = detail.summary
    console.print(f"Run {r.run_id} · scenario {r.scenario} · mode {r.mode} · {_status(r)}")
    console.print(f"Started {r.started_at} · duration {duration(r.duration_s)} · {r.documents} documents "
                  f"({r.complete} complete, {r.failed} failed, {r.reused} reused) · spent {usd(r.spent_usd)} · "
                  f"would cost {usd(r.would_cost_usd)} · {r.calls} calls, {r.errors} errors, {r.retries} retries")
    console.print(_stage_table("Per stage", detail.stages))
    for d in detail.documents:
        doc = d.document
        state = doc.state + (f": {doc.error_code}" if doc.error_code else "") + (" (reused)" if doc.reused_from else "")
        console.print(f"\n{Path(doc.path).name} · {state} · {doc.pages} pages, {doc.chunks} chunks, "
                      f"{doc.tokens} tokens · correlation {doc.correlation_id}")
        if doc.error_message:
            console.print(f"  ✗ {doc.error_message}")
        stages = Table(box=None, show_header=True, padding=(0, 1))
        for col in ("stage", "ms", "attempts", "errors", "retries", "would cost"):
            stages.add_column(col, justify="left" if col == "stage" else "right")
        for s in d.stages:
            stages.add_row(s.stage, ms(s.max_ms), str(s.attempts), str(s.errors), str(s.retries),
                           _nusd(s.would_cost_nusd) if s.attempts else "–")
        if d.stages:
            console.print(stages)
        for e in d.events:
            move = f"{e.from_state or '∅'} → {e.to_state}" if e.from_state != e.to_state else f"({e.to_state})"
            console.print(f"  {e.ts[11:23]}  {move}" + (f"  {e.detail}" if e.detail else ""))
    if detail.run_calls:
        console.print(f"\n{len(detail.run_calls)} calls served no single document (retrieval queries).")


def _change(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return ""
    if a == 0:
        return "" if b == 0 else "new"
    return f"{(b - a) / a * 100:+.0f}%"


def print_comparison(console: Console, c: Comparison) -> None:
    a, b = c.a, c.b
    console.print(f"A {a.run_id} · {a.scenario} · {a.mode} · {_status(a)}")
    console.print(f"B {b.run_id} · {b.scenario} · {b.mode} · {_status(b)}")
    table = Table(title=f"Per stage (regression: p95 up more than {c.threshold_pct:g}%)", title_justify="left")
    table.add_column("stage")
    for col in ("p50 A→B ms", "p95 A→B ms", "Δp95", "errors A→B", "retries A→B", "would cost A→B", ""):
        table.add_column(col, justify="right", no_wrap=True)
    for s in c.stages:
        sa, sb = s.a, s.b
        table.add_row(
            s.stage,
            f"{ms(sa.p50_ms if sa else None)} → {ms(sb.p50_ms if sb else None)}",
            f"{ms(sa.p95_ms if sa else None)} → {ms(sb.p95_ms if sb else None)}",
            "–" if s.p95_change_pct is None else f"{s.p95_change_pct:+.0f}%",
            f"{pct(sa.error_rate if sa else None)} → {pct(sb.error_rate if sb else None)}",
            f"{pct(sa.retry_rate if sa else None)} → {pct(sb.retry_rate if sb else None)}",
            f"{_nusd(sa.would_cost_nusd) if sa else '–'} → {_nusd(sb.would_cost_nusd) if sb else '–'}",
            "▲" if s.regression else "",
        )
    console.print(table)
    console.print(f"Cost: spent {usd(a.spent_usd)} → {usd(b.spent_usd)} · would cost {usd(a.would_cost_usd)} → "
                  f"{usd(b.would_cost_usd)} {_change(a.would_cost_usd, b.would_cost_usd)}")
    console.print(f"Chunks {a.chunks} → {b.chunks} · documents {a.documents} → {b.documents} · "
                  f"failed {a.failed} → {b.failed}")
    ra, rb = c.recall_a, c.recall_b
    if ra.total or rb.total:
        console.print(f"Retrieval recall {ra.passed}/{ra.total} → {rb.passed}/{rb.total}")
    if c.documents:
        docs = Table(title="Same documents", title_justify="left")
        docs.add_column("document", overflow="fold")
        for col in ("chunks A→B", "cosine mean", "cosine min"):
            docs.add_column(col, justify="right", no_wrap=True)
        docs.add_column("vectors", overflow="fold")
        for d in c.documents:
            docs.add_row(Path(d.path).name, f"{d.chunks_a} → {d.chunks_b}",
                         "–" if d.cosine_mean is None else f"{d.cosine_mean:.4f}",
                         "–" if d.cosine_min is None else f"{d.cosine_min:.4f}", d.note)
        console.print(docs)
    if c.regressions:
        console.print("Regressions:")
        for line in c.regressions:
            console.print(f"  ▲ {line}")
    else:
        console.print("No regressions.")
