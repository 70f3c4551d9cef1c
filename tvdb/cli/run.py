"""`tvdb run`, `tvdb resume` and `tvdb runs`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tvdb.cli.common import settings_for
from tvdb.domain import Mode
from tvdb.errors import EXIT_INTERRUPTED, ScenarioError, TvdbError, exit_code_for

if TYPE_CHECKING:
    from tvdb.domain import Stage
    from tvdb.pipeline.jobs import Job
    from tvdb.scenarios.results import RunResult

CRASH_ENV = "TVDB_CRASH_AFTER_STAGE"


def _crash_hook() -> Callable[[Stage], None]:
    """Chaos knob for resume tests: `TVDB_CRASH_AFTER_STAGE=parse` SIGKILLs this process right after
    the parse stage finished for every document; `parse:INT` sends SIGINT instead (a Ctrl-C)."""
    target, _, sig = (os.environ.get(CRASH_ENV) or "").partition(":")
    signum = getattr(signal, f"SIG{sig or 'KILL'}")

    def hook(stage: Stage) -> None:
        if target and stage.value == target:
            os.kill(os.getpid(), signum)

    return hook


@contextmanager
def json_errors(as_json: bool) -> Iterator[None]:
    """With --json, an error still prints one JSON object on stdout (and its message on stderr)."""
    try:
        yield
    except TvdbError as exc:
        if as_json:
            error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, ScenarioError):
                error.update(file=str(exc.path) if exc.path else None, line=exc.line, key=exc.key)
            sys.stdout.write(json.dumps({"passed": False, "exit_code": exit_code_for(exc), "error": error},
                                        indent=2) + "\n")
        raise


def _drive(start: Callable[[Any], Coroutine[Any, Any, RunResult]], *, as_json: bool, progress: bool,
           base: Path | None) -> int:
    from tvdb.cli.render import RichProgress, render_result
    from tvdb.clock import SystemClock
    from tvdb.scenarios.runner import RunHooks

    err = Console(stderr=True)
    out = Console()
    show = progress and err.is_terminal
    bars = RichProgress(err)
    run_ids: list[str] = []

    def on_start(run_id: str, jobs: Sequence[Job]) -> None:
        run_ids.append(run_id)
        if show:
            bars.start(jobs)

    hooks = RunHooks(progress=bars if show else RunHooks().progress, after_stage=_crash_hook(), on_start=on_start)
    async def main() -> RunResult:
        # SIGTERM (a cancelled CI job, `kill`) stops as cleanly as Ctrl-C: the event loop cancels the
        # run at its next await, rather than an exception landing in the middle of a transaction
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await start((SystemClock(), hooks))
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        result = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if show:
            bars.stop()
        resume_cmd = f"tvdb resume {run_ids[0]}" if run_ids else None
        if as_json:
            sys.stdout.write(json.dumps({
                "run_id": run_ids[0] if run_ids else None, "status": "interrupted", "passed": False,
                "exit_code": EXIT_INTERRUPTED, "resume_command": resume_cmd,
            }, indent=2) + "\n")
        if resume_cmd:
            err.print("\n[yellow]Interrupted.[/] Nothing done is lost. Continue with:")
            err.print(f"  {resume_cmd}", soft_wrap=True, highlight=False)
        return EXIT_INTERRUPTED
    if show:
        bars.stop()
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=2) + "\n")
    else:
        render_result(out, result, base=base)
        if result.exit_code == 3 and any(d.status == "deferred" for d in result.documents):
            out.print("Deferred documents continue when the budget has room again:")
            out.print(f"  tvdb resume {result.run_id}", soft_wrap=True, highlight=False)
    return result.exit_code


def run(
    ctx: typer.Context,
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file, e.g. scenarios/quickstart.yaml.")],
    mode: Annotated[Mode | None, typer.Option("--mode", "-m", help="Override the scenario's mode.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the stable CI contract).")] = False,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Forecast the cost; spend nothing, write nothing.")
    ] = False,
    max_usd: Annotated[float | None, typer.Option("--max-usd", help="Per-run budget in USD.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database and uploads live.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress display.")] = True,
) -> None:
    """Run a scenario through upload → parse → chunk → embed → validate → store.

    Exit codes: 0 every expectation passed · 1 an expectation failed · 2 bad scenario, config or
    usage · 3 a budget refused the run · 130 interrupted (resume with `tvdb resume RUN_ID`).

    Examples:  tvdb run scenarios/quickstart.yaml
               tvdb run scenarios/quickstart.yaml --json > result.json
               TVDB_MODE=real tvdb run scenarios/x.yaml --max-usd 0.05
    """
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    with json_errors(as_json):
        loaded = load_scenario(scenario)
        flags: dict[str, Any] = {"mode": mode, "data_dir": data_dir}
        if max_usd is not None:
            flags["budget"] = {"max_usd": max_usd}
        settings = settings_for(ctx, flags, loaded)
        if estimate:
            from tvdb.cli.estimate import print_estimate

            raise typer.Exit(print_estimate(loaded, settings, as_json=as_json))
        code = _drive(lambda a: start_run(loaded, settings, clock=a[0], hooks=a[1]), as_json=as_json,
                      progress=progress, base=loaded.path.parent)
    raise typer.Exit(code)


def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to continue (printed when it stopped; see `tvdb runs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database lives.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress display.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Take over a run whose process cannot be checked.")] = False,
) -> None:
    """Continue an interrupted or deferred run: each job goes on from its last completed state.

    Nothing already done is redone: no stage's service is called again for work that is stored.
    """
    from tvdb.scenarios.runner import resume_run

    with json_errors(as_json):
        settings = settings_for(ctx, {"data_dir": data_dir})
        code = _drive(lambda a: resume_run(run_id, settings, clock=a[0], hooks=a[1], force=force), as_json=as_json,
                      progress=progress, base=None)
    raise typer.Exit(code)


def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of runs.")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database lives.")] = None,
) -> None:
    """List recent runs, newest first. A run whose process is gone (killed) shows as interrupted."""
    from tvdb.cli.render import render_runs
    from tvdb.db import open_db
    from tvdb.pipeline.jobs import owner_alive

    with json_errors(as_json):
        settings = settings_for(ctx, {"data_dir": data_dir})
    db = open_db(settings.database_path)
    rows = list(db.query("SELECT run_id, scenario, mode, status, passed, started_at, finished_at, pid, "
                         "pid_started, host FROM runs ORDER BY started_at DESC LIMIT ?", [limit]))
    for r in rows:
        if r["status"] == "running" and owner_alive(r) is False:
            r["status"] = "interrupted"  # killed (kill -9, a crash): `tvdb resume` continues it
        r["passed"] = None if r["passed"] is None else bool(r["passed"])
        del r["pid"], r["pid_started"], r["host"]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        render_runs(Console(), rows)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("resume")(resume)
    app.command("runs")(runs)
