"""`tvdb run` and `tvdb resume` (run history is `tvdb runs`, in runs.py)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from tvdb.cli.common import ServiceOption, service_flags, settings_for
from tvdb.cli.output import Format, FormatOption, JsonOption, make_console, pick_format, stdout_json
from tvdb.domain import Mode
from tvdb.errors import EXIT_INTERRUPTED, StorageError

if TYPE_CHECKING:
    from tvdb.clock import Clock
    from tvdb.config import Settings
    from tvdb.domain import Stage
    from tvdb.pipeline.jobs import Job
    from tvdb.recording.session import Tape
    from tvdb.scenarios.loader import LoadedScenario
    from tvdb.scenarios.results import RunResult

CRASH_ENV = "TVDB_CRASH_AFTER_STAGE"


def _crash_hook() -> Callable[[Stage], None]:
    """Chaos knob for resume tests: `TVDB_CRASH_AFTER_STAGE=parse` SIGKILLs this process right after
    the parse stage finished for every document of the first window (`streaming.window_documents`);
    `parse:INT` sends SIGINT instead (a Ctrl-C)."""
    target, _, sig = (os.environ.get(CRASH_ENV) or "").partition(":")
    signum = getattr(signal, f"SIG{sig or 'KILL'}")

    def hook(stage: Stage) -> None:
        if target and stage.value == target:
            os.kill(os.getpid(), signum)

    return hook


def resume_command(ctx: typer.Context, run_id: str, data_dir: Path | None) -> str:
    """`tvdb [--config F] [--data-dir D] resume RUN_ID`: what this process was told, so the command works."""
    return _tvdb_command(ctx, data_dir, "resume", run_id)


def show_command(ctx: typer.Context, run_id: str, data_dir: Path | None) -> str:
    """`tvdb [--config F] [--data-dir D] runs show RUN_ID`, for the same database as this process."""
    return _tvdb_command(ctx, data_dir, "runs", "show", run_id)


def _tvdb_command(ctx: typer.Context, data_dir: Path | None, *args: str) -> str:
    obj = ctx.obj or {}
    parts = ["tvdb"]
    if obj.get("config") is not None:
        parts += ["--config", str(Path(obj["config"]).absolute())]
    chosen = data_dir if data_dir is not None else obj.get("data_dir")
    if chosen is not None:
        parts += ["--data-dir", str(Path(chosen).absolute())]
    import shlex

    return shlex.join([*parts, *args])


def rerun_command(_run_id: str) -> str:
    """This command line as it was typed (`tvdb …`): a run with a cassette (recording or replay) is
    not resumed half way but run again, so that is what an interrupted one says to do."""
    import shlex

    return shlex.join(["tvdb", *sys.argv[1:]])


def _drive(start: Callable[[Any], Coroutine[Any, Any, RunResult]], *, fmt: Format, progress: bool,
           base: Path | None, resume_cmd: Callable[[str], str], show_cmd: Callable[[str], str],
           clock: Clock | None = None, again: bool = False) -> int:
    """Run `start` with progress and render its result; `resume_cmd` says how to continue a stopped
    run, or with `again` (a cassette run: tvdb.cli.run.rerun_command) how to run it again; `show_cmd`
    how to see a finished run whose printing a Ctrl-C cut short."""
    from tvdb.cli.render import RichProgress
    from tvdb.clock import SystemClock
    from tvdb.scenarios.runner import RunHooks

    err = make_console(stderr=True)
    out = make_console()
    as_json = fmt is Format.JSON
    show = progress and err.is_interactive  # not in a pipe, a CI log or TERM=dumb
    bars = RichProgress(err)
    run_ids: list[str] = []

    def on_start(run_id: str, jobs: Sequence[Job]) -> None:
        run_ids.append(run_id)
        if show:
            bars.start(jobs)

    hooks = RunHooks(progress=bars if show else RunHooks().progress, after_stage=_crash_hook(), on_start=on_start)
    import asyncio  # here, not at module level: `tvdb --help` must not pay for it (tests/test_startup.py)

    from tvdb.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before the run starts its worker threads (see tvdb/memory.py)

    async def main() -> RunResult:
        # SIGTERM (a cancelled CI job, `kill`) stops as cleanly as Ctrl-C: the event loop cancels the
        # run at its next await, rather than an exception landing in the middle of a transaction
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await start((clock or SystemClock(), hooks))
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        result = asyncio.run(main())
    except StorageError as exc:
        if show:
            bars.stop()
        if run_ids:  # the message (and --json) then says how to continue once there is space
            raise exc.with_resume(resume_cmd(run_ids[0])) from None
        raise
    except (KeyboardInterrupt, asyncio.CancelledError):
        if show:
            bars.stop()
        command = resume_cmd(run_ids[0]) if run_ids else None
        if as_json:
            stdout_json({
                "run_id": run_ids[0] if run_ids else None, "status": "interrupted", "passed": False,
                "exit_code": EXIT_INTERRUPTED, "resume_command": command,
            })
        if command:
            then = (" The cassette was not written (a cassette run is not resumed half way); the ledger keeps "
                    "what was spent. Run it again:" if again else " Nothing done is lost. Continue with:")
            err.print(Text.assemble("\n", ("Interrupted.", "yellow"), then))
            err.print(f"  {command}", soft_wrap=True, markup=False)
        return EXIT_INTERRUPTED
    try:
        if show:
            bars.stop()
        _print_result(out, result, base=base, fmt=fmt, resume_cmd=resume_cmd)
    except KeyboardInterrupt:
        # the run is finished and stored: only its printout was cut short, and nothing needs resuming
        err.print(Text.assemble("\n", ("Interrupted while printing.", "yellow"),
                                f" The run {result.run_id} is complete and stored; see it with:"))
        err.print(f"  {show_cmd(result.run_id)}", soft_wrap=True, markup=False)
        return EXIT_INTERRUPTED
    return result.exit_code


def _print_result(out: Any, result: RunResult, *, base: Path | None, fmt: Format,
                  resume_cmd: Callable[[str], str]) -> None:
    from tvdb.cli.render import render_result

    render_result(out, result, base=base, fmt=fmt)
    if fmt is not Format.JSON and result.exit_code == 3 and any(d.status == "deferred" for d in result.documents):
        out.print("Deferred documents continue when the budget has room again:")
        out.print(f"  {resume_cmd(result.run_id)}", soft_wrap=True, markup=False)


def run(
    ctx: typer.Context,
    scenario: Annotated[
        Path, typer.Argument(metavar="SCENARIO", help="Scenario YAML file, e.g. scenarios/quickstart.yaml.")
    ],
    mode: Annotated[Mode | None, typer.Option("--mode", "-m", help="Override the scenario's mode.")] = None,
    service: ServiceOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Forecast the cost; spend nothing, write nothing.")
    ] = False,
    max_usd: Annotated[float | None, typer.Option("--max-usd", help="Per-run budget in USD.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database and uploads live.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress display.")] = True,
    fresh: Annotated[bool, typer.Option(
        "--fresh", "--no-reuse",
        help="Parse and embed every document again instead of reusing identical stored work.")] = False,
    record: Annotated[bool, typer.Option(
        "--record", help="Record the run's real HTTP traffic to a fresh cassette (replaces the old one).")] = False,
    record_mode: Annotated[RecordModeChoice | None, typer.Option(
        "--record-mode", help="Record with vcrpy's mode: once, new_episodes (append), all, none.")] = None,
    cassette: Annotated[Path | None, typer.Option(
        "--cassette", help="Cassette file (default: <recording.cassette_dir>/<scenario name>.yaml).")] = None,
) -> None:
    """Run a scenario through upload → parse → chunk → embed → validate → store.

    Exit codes: 0 every expectation passed; 1 an expectation failed; 2 bad scenario, config or usage;
    3 a budget refused the run; 4 the disk is full or read-only (free space, then the printed `tvdb
    resume` command); 70 a bug in tvdb (rerun with --debug); 130 interrupted (continue with the
    printed `tvdb resume` command).

    \b
    Examples:
      tvdb run scenarios/quickstart.yaml
      tvdb run scenarios/quickstart.yaml --json > result.json
      tvdb run scenarios/quickstart.yaml --estimate
      tvdb run scenarios/quickstart.yaml --fresh      # re-parse and re-embed, reuse nothing
      TVDB_MODE=real tvdb run scenarios/x.yaml --max-usd 0.05
      tvdb run scenarios/x.yaml --mode hybrid --service parser=mock
      tvdb run scenarios/x.yaml --mode real --record    # writes cassettes/NAME.yaml, NAME =
                                                        # the scenario's `name:`, not its file name
      tvdb replay cassettes/NAME.yaml                   # (or: tvdb replay --scenario scenarios/x.yaml)
    """
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    chosen = pick_format(fmt, as_json)
    loaded = load_scenario(scenario)
    flags: dict[str, Any] = {"mode": mode, "data_dir": data_dir, "services": service_flags(service)}
    if max_usd is not None:
        flags["budget"] = {"max_usd": max_usd}
    settings = settings_for(ctx, flags, loaded)
    tape = recording_tape(loaded, settings, record=record, record_mode=record_mode, cassette=cassette,
                          estimate=estimate)
    if estimate:
        from tvdb.cli.estimate import print_estimate

        raise typer.Exit(print_estimate(loaded, settings, fmt=chosen, fresh=fresh))
    code = _drive(lambda a: start_run(loaded, settings, clock=a[0], hooks=a[1], tape=tape, fresh=fresh),
                  fmt=chosen,
                  progress=progress, base=loaded.path.parent, again=tape is not None,
                  resume_cmd=rerun_command if tape is not None else lambda r: resume_command(ctx, r, data_dir),
                  show_cmd=lambda r: show_command(ctx, r, data_dir))
    raise typer.Exit(code)


class RecordModeChoice(StrEnum):
    once = "once"
    new_episodes = "new_episodes"
    all = "all"
    none = "none"


def recording_tape(loaded: LoadedScenario, settings: Settings, *, record: bool, record_mode: str | None,
                   cassette: Path | None, estimate: bool) -> Tape | None:
    """The cassette session `--record` / `--record-mode` / `--cassette` ask for, or None.

    Raises ConfigError when recording cannot mean anything (no real service, or with --estimate)."""
    from tvdb.errors import ConfigError
    from tvdb.recording.session import Tape, cassette_path, unwritable_cassette
    from tvdb.services.modes import service_mode

    if not record and record_mode is None:
        if cassette is not None:
            raise ConfigError("--cassette names where to record or replay: add --record (or --record-mode), "
                              "or use `tvdb replay CASSETTE`")
        return None
    if record and record_mode is not None:
        raise ConfigError("--record writes a fresh cassette; --record-mode picks vcrpy's mode instead: use one of them")
    if estimate:
        raise ConfigError("--estimate spends nothing and sends nothing, so there is nothing to record")
    if all(service_mode(settings, s)[0] is Mode.MOCK for s in ("parser", "embedder")):
        raise ConfigError("recording keeps real HTTP traffic, and this run has no real service (mode mock): "
                          "use --mode real, or services: {embedder: real} in the scenario")
    path = cassette_path(settings, loaded.scenario.name, cassette)
    problem = unwritable_cassette(path, loaded.scenario.name)
    if problem is not None:  # before anything is sent: a run that cannot be saved must not spend
        raise ConfigError(f"cannot record to {path}: {problem}")
    mode = str(getattr(record_mode, "value", record_mode or "all"))
    return Tape(path=path, record_mode=mode, fresh=record,  # type: ignore[arg-type]
                scenario=loaded.scenario.name, scenario_path=scenario_reference(loaded.path, path))


def scenario_reference(scenario: Path, cassette: Path) -> str:
    """The scenario path as a cassette stores it: relative to the cassette's folder, so a cassette
    committed with its scenario replays from any checkout."""
    import os

    try:
        return os.path.relpath(scenario.resolve(), cassette.resolve().parent)
    except ValueError:  # another drive (Windows)
        return str(scenario.resolve())


def resume(
    ctx: typer.Context,
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The run to continue (printed when it stopped; see `tvdb runs`).")
    ],
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database lives.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress display.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Take over a run whose process cannot be checked.")] = False,
) -> None:
    """Continue an interrupted or deferred run: each job goes on from its last completed state.

    Nothing already done is redone: no stage's service is called again for work that is stored.
    Exit codes as for `tvdb run`.
    """
    from tvdb.scenarios.runner import resume_run

    chosen = pick_format(fmt, as_json)
    settings = settings_for(ctx, {"data_dir": data_dir})
    run_id = _full_run_id(settings, run_id)
    code = _drive(lambda a: resume_run(run_id, settings, clock=a[0], hooks=a[1], force=force), fmt=chosen,
                  progress=progress, base=None, resume_cmd=lambda r: resume_command(ctx, r, data_dir),
                  show_cmd=lambda r: show_command(ctx, r, data_dir))
    raise typer.Exit(code)


def _full_run_id(settings: Settings, ref: str) -> str:
    """A unique run id prefix as the full id (as everywhere a run id is taken); raises AmbiguousRunId
    for a prefix of several. An unknown one is left as given: the resume names the database it
    looked in."""
    from tvdb.db import open_db
    from tvdb.errors import AmbiguousRunId, RunNotFound
    from tvdb.history.store import RunStore

    if not settings.database_path.is_file():
        return ref
    try:
        return RunStore(open_db(settings.database_path)).resolve(ref)
    except AmbiguousRunId:
        raise
    except RunNotFound:
        return ref


def register(app: typer.Typer) -> None:
    app.command("run")(run)  # short helps: tvdb.cli.lazy.COMMANDS
    app.command("resume")(resume)
