"""Rich rendering of runs: the live progress display and the end-of-run summary. No logic here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tvdb.domain import JobState, Stage
from tvdb.pipeline.jobs import Job
from tvdb.scenarios.results import RunResult

STAGES = tuple(s.value for s in Stage)
_STEP = {
    JobState.PENDING: 0, JobState.UPLOADED: 1, JobState.PARSING: 1, JobState.PARSED: 2, JobState.CHUNKED: 3,
    JobState.EMBEDDING: 3, JobState.EMBEDDED: 4, JobState.STORED: 6, JobState.COMPLETE: 6,
}
_STYLE = {"complete": "green", "reused": "green", "failed": "red", "deferred": "yellow"}


class RichProgress:
    """One bar per document, advancing through the stages; implements `ProgressSink`."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", style="bold"), BarColumn(bar_width=24),
            TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def start(self, jobs: Sequence[Job]) -> None:
        self._progress.start()
        for job in jobs:
            self._tasks[job.job_id] = self._progress.add_task(
                Path(job.path).name, total=len(STAGES), state=job.state.value
            )
            self.job_changed(job)

    def stop(self) -> None:
        self._progress.stop()

    def job_changed(self, job: Job) -> None:
        task = self._tasks.get(job.job_id)
        if task is None:
            return
        if job.state in (JobState.FAILED, JobState.DEFERRED):
            label = f"[{_STYLE[job.state.value]}]{job.state.value}: {job.error_code}[/]"
            self._progress.update(task, state=label)
            self._progress.stop_task(task)
            return
        done = job.state is JobState.COMPLETE
        label = "[green]complete[/]" + (" (reused)" if job.reused_from else "") if done else job.state.value
        self._progress.update(task, completed=_STEP.get(job.state, 0), state=label)


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _short(path: str, base: Path | None) -> str:
    if base is not None:
        try:
            return str(Path(path).relative_to(base))
        except ValueError:
            pass
    return Path(path).name


def render_result(console: Console, result: RunResult, *, base: Path | None = None) -> None:
    names = [Path(d.path).name for d in result.documents]
    if len(set(names)) == len(names):  # bare file names read best in a narrow terminal
        base = None
    docs = Table(title=f"Run {result.run_id} · scenario {result.scenario} · mode {result.mode}",
                 title_justify="left")
    for col in ("document", "status", "pages", "chunks", "tokens", "vectors", "would cost"):
        docs.add_column(col, justify="left" if col in ("document", "status") else "right",
                        overflow="fold", no_wrap=col != "document" and col != "status")
    times = Table(title="Time per stage (ms)", title_justify="left")
    times.add_column("document", overflow="fold")
    for stage in STAGES:
        times.add_column(stage, justify="right")
    for d in result.documents:
        status = d.status if not d.error_code else f"{d.status}: {d.error_code}"
        if d.reused_from:
            status = "reused"  # complete: identical bytes and settings were ingested by an earlier run
        name = _short(d.path, base)
        docs.add_row(
            name, f"[{_STYLE.get(d.status, 'white')}]{escape(status)}[/]", str(d.pages), str(d.chunks), str(d.tokens),
            str(d.vectors), _money(d.would_cost_usd),
        )
        times.add_row(name, *(f"{d.stage_ms[s]:.0f}" if s in d.stage_ms else "–" for s in STAGES))
    console.print(docs)
    for d in result.documents:
        if d.error_message:
            console.print(f"  [red]✗[/] {escape(_short(d.path, base))}: {escape(d.error_message)}", highlight=False)
    if console.width >= 100 or len(result.documents) <= 10:
        console.print(times)
    if result.expectations:
        console.print("[bold]Expectations[/]")
        for e in result.expectations:
            mark = "[green]✓[/]" if e.passed else "[red]✗[/]"
            detail = f" [dim]— {escape(e.detail)}[/]" if e.detail else ""
            console.print(f" {mark} {escape(e.description)}{detail}", highlight=False)
    u = result.usage
    console.print(
        f"Spent {_money(u.cost_usd)} · the real services would have charged {_money(u.would_cost_usd)}"
        + (f" ({u.unpriced_calls} calls without a known price)" if u.unpriced_calls else ""),
        highlight=False,
    )
    if result.tape:
        console.print(tape_line(result.tape), highlight=False)
    for line in result.alerts:
        console.print(f"[bold yellow]alert:[/] {escape(line)}", highlight=False)
    for service, why in result.provenance.items():
        console.print(f"  {service}: {escape(why)}", style="dim", highlight=False)
    verdict = {0: "[bold green]PASSED[/]", 1: "[bold red]FAILED[/]", 3: "[bold yellow]BUDGET REFUSED[/]"}
    console.print(verdict.get(result.exit_code, f"exit {result.exit_code}") + f"  (exit code {result.exit_code})")


def tape_line(tape: Mapping[str, Any]) -> str:
    """One line on a run's cassette: "replayed N calls, avoided $X" or "recorded N calls …"."""
    where = escape(str(tape.get("cassette")))
    if "replayed_calls" in tape:
        return f"Replayed {tape['replayed_calls']} calls, avoided {_money(tape.get('avoided_usd'))} · from {where}"
    return (f"Recorded {tape.get('recorded_calls', 0)} calls worth {_money(tape.get('recorded_cost_usd'))} "
            f"· to {where}")


def render_runs(console: Console, rows: Sequence[dict[str, Any]]) -> None:
    table = Table(title="Runs", title_justify="left")
    table.add_column("run_id", no_wrap=True)  # people copy it into `tvdb resume`
    for col in ("scenario", "mode", "status", "passed", "started_at"):
        table.add_column(col, overflow="fold")
    for r in rows:
        passed = {True: "[green]yes[/]", False: "[red]no[/]"}.get(r.get("passed"), "–")  # type: ignore[arg-type]
        started = str(r["started_at"] or "")[:16].replace("T", " ")  # minutes are enough to find a run
        table.add_row(r["run_id"], r["scenario"], r["mode"], r["status"], passed, started)
    console.print(table)
