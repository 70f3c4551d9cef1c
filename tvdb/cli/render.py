"""Rendering of runs: the live progress display, the end-of-run summary and the runs list. No logic here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from tvdb.cli.output import (
    Cell,
    Col,
    Format,
    Kind,
    TableData,
    clean,
    data,
    data_lines,
    emit_table,
    print_hanging,
    print_table,
    stdout_json,
)
from tvdb.domain import JobState, Stage
from tvdb.money import format_usd
from tvdb.pipeline.jobs import Job
from tvdb.scenarios.results import RunResult, UsageSummary
from tvdb.words import counted

STAGES = tuple(s.value for s in Stage)
# how many of the stages a job in this state has finished
_STEP = {
    JobState.PENDING: 0, JobState.UPLOADED: 1, JobState.PARSING: 1, JobState.PARSED: 2, JobState.CHUNKED: 3,
    JobState.EMBEDDING: 3, JobState.EMBEDDED: 4, JobState.STORED: 6, JobState.COMPLETE: 6,
}
_DONE = (JobState.COMPLETE, JobState.FAILED, JobState.DEFERRED)
_BUSY = {JobState.PENDING: "upload", JobState.UPLOADED: "parse", JobState.PARSING: "parse",
         JobState.PARSED: "chunk", JobState.CHUNKED: "embed", JobState.EMBEDDING: "embed",
         JobState.EMBEDDED: "store", JobState.STORED: "store"}
_SHOWN_STAGES = (("parse", 2), ("chunk", 3), ("embed", 4), ("store", 6))
_STYLE = {"complete": "green", "reused": "green", "failed": "red", "deferred": "yellow"}
IN_FLIGHT_SHOWN = 4


class _Display(Progress):
    """Rich's Progress with the in-flight documents under its one bar."""

    def __init__(self, extra: Any, *columns: Any, **kwargs: Any) -> None:
        self._extra = extra
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield self._extra()


class RichProgress:
    """One overall bar for the run (implements `ProgressSink`): documents through each stage, the rate,
    the ETA, and at most `IN_FLIGHT_SHOWN` documents in flight.

    `job_changed` only updates counters (O(1)); drawing happens a few times a second on Rich's refresh
    thread, so the display costs the same for 10 documents or 10,000 (see bench/progress.py)."""

    def __init__(self, console: Console, *, refresh_per_second: float = 4) -> None:
        self._task: TaskID | None = None
        self._states: dict[str, JobState] = {}
        self._names: dict[str, str] = {}
        self._counts: Counter[JobState] = Counter()
        self._busy: dict[str, None] = {}  # in flight, oldest first
        self._requests: dict[str, tuple[int, int]] = {}  # stage → (finished, planned) of its current batch
        self._start = 0.0
        self._progress = _Display(
            self._in_flight, TextColumn("[bold]run[/]"), BarColumn(bar_width=24),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=False, refresh_per_second=refresh_per_second,
        )

    def start(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self._names[job.job_id] = clean(Path(job.path).name)
            self._states[job.job_id] = job.state
            self._counts[job.state] += 1
        self._task = self._progress.add_task("run", total=len(jobs), rate="")
        self._start = self._progress.get_time()
        self._progress.start()

    def stop(self) -> None:
        self._update()
        self._progress.stop()

    def job_changed(self, job: Job) -> None:
        old = self._states.get(job.job_id)
        if old is None:
            return
        self._counts[old] -= 1
        self._counts[job.state] += 1
        self._states[job.job_id] = job.state
        if job.state in _DONE:
            self._busy.pop(job.job_id, None)
        else:
            self._busy.setdefault(job.job_id, None)
        self._update()

    def requests_changed(self, stage: str, finished: int, planned: int) -> None:
        self._requests[stage] = (finished, planned)
        self._update()

    def _stages(self) -> str:
        total = len(self._states)
        past = [sum(n for state, n in self._counts.items() if _STEP.get(state, 0) >= step) for _, step in _SHOWN_STAGES]
        failed = self._counts[JobState.FAILED] + self._counts[JobState.DEFERRED]
        parts = [f"{name} {n}/{total}" + self._requests_of(name)
                 for (name, _), n in zip(_SHOWN_STAGES, past, strict=True)]
        return " · ".join(parts + ([f"[red]failed {failed}[/]"] if failed else []))

    def _requests_of(self, stage: str) -> str:
        if stage not in self._requests:
            return ""
        finished, planned = self._requests[stage]
        return f" ({finished}/{planned} requests)"

    def _update(self) -> None:
        if self._task is None:
            return
        done = sum(self._counts[s] for s in _DONE)
        elapsed = self._progress.get_time() - self._start
        rate = f"{done / elapsed:.1f} docs/s" if done and elapsed > 0 else ""
        self._progress.update(self._task, completed=done, rate=rate)

    def _in_flight(self) -> RenderableType:
        """The per-stage counts on a line of their own under the bar (beside it, an 80-column terminal
        cut the elapsed time and the ETA to `…`), then the documents in flight."""
        ids = list(self._busy)[:IN_FLIGHT_SHOWN]
        lines = [Text.from_markup("  " + self._stages())]
        lines += [Text.assemble("  ", (f"{_BUSY.get(self._states[i], '')}", "dim"), " ", self._names[i]) for i in ids]
        more = len(self._busy) - len(ids)
        if more > 0:
            lines.append(Text(f"  … and {more} more in flight", "dim"))
        return Text("\n").join(lines)


def _short(path: str, base: Path | None) -> str:
    if base is not None:
        try:
            return str(Path(path).relative_to(base))
        except ValueError:
            pass
    return Path(path).name


def _base_for(result: RunResult, base: Path | None) -> Path | None:
    """Bare file names read best in a narrow terminal: paths relative to `base` only when names repeat."""
    names = [Path(d.path).name for d in result.documents]
    return None if len(set(names)) == len(names) else base


def document_table(result: RunResult, base: Path | None) -> TableData:
    base = _base_for(result, base)
    # the user's own pipeline (`pipeline:`) keeps its chunks and vectors: tvdb shows what its requests used
    own = result.pipeline is not None
    cols = [Col("document", Kind.PATH, "path"), Col("status", Kind.WORD), Col("pages", Kind.NUM),
            *(() if own else (Col("chunks", Kind.NUM),)), Col("tokens", Kind.NUM),
            *(() if own else (Col("vectors", Kind.NUM),)), Col("would cost", Kind.MONEY, "would_cost_usd")]
    rows: list[list[str | Text | None]] = []
    values: list[list[Any]] = []
    for d in result.documents:
        status = d.status if not d.error_code else f"{d.status}: {d.error_code}"
        if d.reused_from:
            status = "reused"  # complete: identical bytes and settings were ingested by an earlier run
        mine = [d.chunks, d.tokens, d.vectors] if not own else [d.tokens]
        rows.append([_short(d.path, base), data(status, _STYLE.get(d.status, "")), str(d.pages),
                     *(str(n) for n in mine), format_usd(d.would_cost_usd)])
        values.append([d.path, status, d.pages, *mine, d.would_cost_usd])
    # a replay answered from its cassette: `replay`, as `tvdb runs` lists it, not the settings' `real`
    mode = "replay" if result.tape and result.tape.get("record_mode") == "none" else result.mode
    title = f"Run {result.run_id} · scenario {clean(result.scenario)} · mode {mode}"
    if own:
        title += f" · pipeline {clean(str(result.pipeline))}"
    return TableData(cols, rows, title=title, values=values)


def _times_table(result: RunResult, base: Path | None) -> TableData:
    base = _base_for(result, base)
    stages = ("upload", "pipeline") if result.pipeline is not None else STAGES  # the user's code is one stage
    cols = [Col("document", Kind.PATH), *(Col(s, Kind.NUM) for s in stages)]
    rows = [[_short(d.path, base), *(f"{d.stage_ms[s]:.0f}" if s in d.stage_ms else "–" for s in stages)]
            for d in result.documents]
    return TableData(cols, rows, title="Time per stage (ms)")


def render_result(console: Console, result: RunResult, *, base: Path | None = None, fmt: Format = Format.TABLE
                  ) -> None:
    """The run as `fmt`: json is the `--json` contract, csv the documents table, table/plain the summary."""
    if fmt is Format.JSON:
        stdout_json(result.as_json(base))
        return
    if fmt is Format.CSV:
        emit_table(console, document_table(result, base), fmt)
        return
    plain = fmt is Format.PLAIN
    print_table(console, document_table(result, base), plain=plain)
    named = _base_for(result, base)
    for d in result.documents:
        if d.error_message:
            print_hanging(console, Text.assemble("  ", ("✗", "red"), " ", data(_short(d.path, named)), ": "),
                          data_lines(d.error_message), indent=4)
        for warning in d.warnings:
            print_hanging(console, Text.assemble("  ", ("!", "yellow"), " ", data(_short(d.path, named)), ": "),
                          data_lines(warning), indent=4)
    if console.width >= 100 or len(result.documents) <= 10:
        print_table(console, _times_table(result, base), plain=plain)
    if result.expectations:
        console.print(Text("Expectations", "bold"))
        for e in result.expectations:
            mark = Text("✓", "green") if e.passed else Text("✗", "red")
            detail = Text.assemble(" ", ("— ", "dim"), data_lines(e.detail, "dim")) if e.detail else Text("")
            print_hanging(console, Text.assemble(" ", mark, " "), Text.assemble(data(e.description), detail),
                          indent=3)
    print_hanging(console, "", Text(spent_line(result.usage)), indent=2)
    if result.tape:
        console.print(data(tape_line(result.tape)))
    for note in result.notes:
        console.print(Text.assemble(("note:", "bold"), " ", data(note)))
    for line in result.alerts:
        console.print(Text.assemble(("alert:", "bold yellow"), " ", data(line)))
    render_provenance(console, result, plain=plain)
    verdict = {0: ("PASSED", "bold green"), 1: ("FAILED", "bold red"), 3: ("BUDGET REFUSED", "bold yellow")}
    word, style = verdict.get(result.exit_code, (f"exit {result.exit_code}", ""))
    console.print(Text.assemble((word, style), f"  (exit code {result.exit_code})"))


def spent_line(u: UsageSummary) -> str:
    """The run's money: this run's calls only, split ingestion + retrieval queries; reused documents,
    which made no calls, are named with the first-ingestion cost that `max_cost_usd` adds for them."""
    queries = u.query_would_cost_usd
    split = (f" ({format_usd(u.ingestion_would_cost_usd)} ingestion + {format_usd(queries)} retrieval queries)"
             if queries or u.reused_documents else "")  # the figure max_cost_usd's detail names for this run
    reused = (f" · {u.reused_documents} reused document(s) made no calls (their first ingestion: "
              f"{format_usd(u.reused_would_cost_usd)}, counted by max_cost_usd)" if u.reused_documents else "")
    unpriced = f" ({counted(u.unpriced_calls, 'call')} without a known price)" if u.unpriced_calls else ""
    return (f"Spent {format_usd(u.cost_usd)} · the real services would have charged {format_usd(u.would_cost_usd)}"
            + split + unpriced + reused)


def tape_line(tape: Mapping[str, Any]) -> str:
    """One line on a run's cassette: "Replayed N calls, avoided $X" or "Recorded N calls …" (plain text);
    requests the cassette could not answer are counted apart ("Replayed 0 of 4 calls …; 4 missed the
    cassette"), never as replayed. A recording that replaced an existing file says so, and one that
    wrote no file says why ("Nothing recorded: …")."""
    where = str(tape.get("cassette"))
    missed = int(tape.get("missed_calls") or 0)
    if "replayed_calls" in tape:
        done = tape["replayed_calls"]
        if not missed:
            return f"Replayed {counted(done, 'call')}, avoided {format_usd(tape.get('avoided_usd'))} · from {where}"
        return (f"Replayed {done} of {done + missed} calls, avoided {format_usd(tape.get('avoided_usd'))}; "
                f"{missed} missed the cassette (see the failed documents) · from {where}")
    if tape.get("written", True):  # a run stored before `written` existed did write its file
        line = (f"Recorded {counted(tape.get('recorded_calls', 0), 'call')} "
                f"worth {format_usd(tape.get('recorded_cost_usd'))} · to {where}")
    else:
        line = f"Nothing recorded: {tape.get('not_written')}"
    line += f"; {missed} request(s) missed the cassette" if missed else ""
    return line + (f"; overwrote {where} (the cassette that was there)" if tape.get("overwrote") else "")


def provenance_table(result: RunResult) -> TableData:
    """Which implementation served each stage's calls, and why (one row per stage, implementation, reason)."""
    cols = [Col("stage", Kind.WORD), Col("implementation", Kind.WORD), Col("reason", Kind.TEXT),
            Col("calls", Kind.NUM), Col("failed", Kind.NUM, key="errors")]
    rows: list[list[Cell]] = [
        [p.stage, data(p.implementation, "green" if p.implementation == "real" else "cyan"), p.reason,
         str(p.calls), str(p.errors) if p.errors else "–"] for p in result.provenance]
    values = [[p.stage, p.implementation, p.reason, p.calls, p.errors] for p in result.provenance]
    return TableData(cols, rows, title="Provenance", values=values)


def render_provenance(console: Console, result: RunResult, *, plain: bool = False) -> None:
    """The provenance table, vectors per embedding space, and how many calls fell back."""
    if result.provenance:
        print_table(console, provenance_table(result), plain=plain)
    if result.spaces:
        spaces = " · ".join(f"{sp.label}: {n}" for sp, n in result.spaces)
        console.print(Text.assemble("Vectors per space: ", data(spaces)))
        if len(result.spaces) > 1:
            console.print(Text("  a query is compared only with vectors of its own space", "dim"))
    if result.fallbacks:
        calls = f"{result.fallbacks} call{'' if result.fallbacks == 1 else 's'}"
        console.print(Text.assemble((f"{calls} fell back to local", "yellow"), " (hybrid mode)"))

