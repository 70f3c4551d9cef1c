"""`tvdb run`, `tvdb resume` and `tvdb runs`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tvdb.cli.common import settings_for
from tvdb.domain import Mode

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
    try:
        result = asyncio.run(start((SystemClock(), hooks)))
    except KeyboardInterrupt:
        if show:
            bars.stop()
        if run_ids:
            err.print("\n[yellow]Interrupted.[/] Nothing done is lost. Continue with:")
            err.print(f"  tvdb resume {run_ids[0]}", soft_wrap=True, highlight=False)
        return 130
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

    loaded = load_scenario(scenario)
    flags: dict[str, Any] = {"mode": mode, "data_dir": data_dir}
    if max_usd is not None:
        flags["budget"] = {"max_usd": max_usd}
    settings = settings_for(ctx, flags, loaded)
    if estimate:
        from tvdb.cli.estimate import print_estimate

        raise typer.Exit(print_estimate(loaded, settings, as_json=as_json))
    from tvdb.scenarios.runner import start_run

    code = _drive(lambda a: start_run(loaded, settings, clock=a[0], hooks=a[1]), as_json=as_json,
                  progress=progress, base=loaded.path.parent)
    raise typer.Exit(code)


def resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to continue (printed when it stopped; see `tvdb runs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database lives.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Continue an interrupted or deferred run: each job goes on from its last completed state.

    Nothing already done is redone: no stage's service is called again for work that is stored.
    """
    from tvdb.scenarios.runner import resume_run

    settings = settings_for(ctx, {"data_dir": data_dir})
    code = _drive(lambda a: resume_run(run_id, settings, clock=a[0], hooks=a[1]), as_json=as_json,
                  progress=progress, base=None)
    raise typer.Exit(code)


def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many recent runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """List recent runs, newest first."""
    from tvdb.cli.render import render_runs
    from tvdb.db import open_db

    settings = settings_for(ctx, {"data_dir": data_dir})
    db = open_db(settings.database_path)
    rows = list(db.query("SELECT run_id, scenario, mode, status, passed, started_at, finished_at FROM runs "
                         "ORDER BY started_at DESC LIMIT ?", [limit]))
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        render_runs(Console(), rows)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("resume")(resume)
    app.command("runs")(runs)
