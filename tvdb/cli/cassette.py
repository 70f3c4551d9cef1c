"""`tvdb replay` and `tvdb cassette check | list | show | drift`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tvdb.cli.common import NowOption, now_or, plain_console, settings_for
from tvdb.cli.drift import drift
from tvdb.cli.output import (
    Col,
    Format,
    FormatOption,
    JsonOption,
    Kind,
    TableData,
    data,
    emit_table,
    make_console,
    pick_format,
)
from tvdb.cli.run import _drive, rerun_command, show_command

if TYPE_CHECKING:
    from tvdb.recording.info import CassetteSummary
    from tvdb.recording.scan import Finding

app = typer.Typer(help="Inspect and check cassettes (recorded HTTP traffic).", no_args_is_help=True)


def _scenario_of(cassette: Path) -> Path:
    """The scenario file a cassette's metadata names (stored relative to the cassette's folder)."""
    from tvdb.errors import ConfigError
    from tvdb.recording.store import read_cassette

    ref = read_cassette(cassette).tvdb.get("scenario_path")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{cassette}: the cassette does not name its scenario (it was not recorded by tvdb); "
                          "replay it with `tvdb replay --scenario SCENARIO --cassette CASSETTE`")
    path = Path(ref) if Path(ref).is_absolute() else cassette.parent / ref
    if not path.is_file():
        raise ConfigError(f"{cassette}: its scenario {ref} (relative to the cassette) does not exist; "
                          "pass it with --scenario")
    return path


def _refuse_a_scenario_as_cassette(cassette: Path, cassette_option: Path | None) -> None:
    """A scenario file where the cassette goes is the commonest slip (both are YAML, `tvdb run` takes
    the scenario as its argument); name it and the command that works, instead of "not a vcrpy cassette"."""
    from tvdb.errors import ConfigError
    from tvdb.recording.session import command_path
    from tvdb.scenarios.discover import is_scenario_file

    if not is_scenario_file(cassette):  # the rule `replay --all` uses; a cassette never passes it
        return
    fixed = ["tvdb replay --scenario", shlex.quote(command_path(cassette))]
    if cassette_option is not None:
        fixed += ["--cassette", shlex.quote(command_path(cassette_option))]
    raise ConfigError(f"{cassette} is a scenario, not a cassette; replay it with `{' '.join(fixed)}`")


def replay(
    ctx: typer.Context,
    cassette: Annotated[Path | None, typer.Argument(
        metavar="CASSETTE|DIR",
        help="Cassette to replay (its metadata names the scenario); with --all, the folder of scenarios "
             "(default: scenarios).")] = None,
    scenario: Annotated[Path | None, typer.Option(
        "--scenario", "-s", help="Scenario to replay (cassette: <recording.cassette_dir>/<name>.yaml).")] = None,
    cassette_option: Annotated[Path | None, typer.Option("--cassette", help="Cassette for --scenario.")] = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where the database and uploads live.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Live progress display.")] = True,
    every: Annotated[bool, typer.Option(
        "--all", help="Replay every scenario file under DIR from its cassette (<cassette_dir>/<name>.yaml).")] = False,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="With --all: scenarios replayed at once, each in its own process "
                                    "(default: the CPU count).")] = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", help="With --all: replay only shard I of N (stable by scenario path, "
                                       "balanced by recorded interactions).")] = None,
    require_cassettes: Annotated[bool, typer.Option(
        "--require-cassettes", help="With --all: a scenario without a cassette is an error, not skipped.")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="With --all: write JUnit XML here (a testcase per scenario and per expectation).")] = None,
    summary_md: Annotated[Path | None, typer.Option(
        "--summary-md", help="With --all: write a Markdown summary here (e.g. \"$GITHUB_STEP_SUMMARY\").")] = None,
) -> None:
    """Run a scenario through the real clients with every HTTP request answered from its cassette.

    The network is blocked: an unrecorded request fails its document with `cassette_miss`, naming the
    closest recorded request and what differs. Nothing is reused from earlier runs. Replayed calls go to
    the ledger as `replay` (cost $0, would_cost = the money avoided). Exit codes as for `tvdb run`.

    With --all, every scenario file under DIR (YAML with top-level `name` and `documents`) is
    replayed from <recording.cassette_dir>/<name>.yaml, --jobs at a time; one without a cassette is
    skipped (an error with --require-cassettes). Exit 0 when every scenario passed or was skipped,
    1 when one failed, 2 when one could not be used (bad scenario or cassette), 70 a bug in tvdb.
    `--json` prints {"runs": [run objects as `tvdb run --json`], "totals": {...}}. Shards' reports
    merge with `tvdb replay merge`.

    \b
    Examples:
      tvdb replay cassettes/nightly.yaml
      tvdb replay --scenario scenarios/nightly.yaml --json
      tvdb replay --all scenarios/ --junit replay.xml --summary-md "$GITHUB_STEP_SUMMARY"
      tvdb replay --all scenarios/ --shard 2/4 --json > shard-2.json
      tvdb replay merge shard-*.json --junit replay.xml
    """
    from tvdb.clock import VirtualClock
    from tvdb.errors import ConfigError
    from tvdb.recording.session import Tape, cassette_path
    from tvdb.recording.store import read_cassette
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import start_run

    chosen = pick_format(fmt, as_json)
    suite_only = {"--jobs": jobs, "--shard": shard, "--require-cassettes": require_cassettes or None,
                  "--junit": junit, "--summary-md": summary_md}
    if every:
        if scenario is not None or cassette_option is not None:
            raise ConfigError("--all replays every scenario under DIR from its own cassette: "
                              "drop --scenario/--cassette")
        from tvdb.cli.replay_all import replay_all

        raise typer.Exit(replay_all(ctx, cassette, fmt=chosen, data_dir=data_dir, jobs=jobs, shard=shard,
                                    require_cassettes=require_cassettes, junit=junit, summary_md=summary_md))
    if given := [flag for flag, value in suite_only.items() if value is not None]:
        raise ConfigError(f"{', '.join(given)} work with --all (tvdb replay --all DIR)")
    if (cassette is None) == (scenario is None):
        raise ConfigError("tvdb replay needs a CASSETTE or --scenario SCENARIO (one of them)")
    if cassette is not None:
        _refuse_a_scenario_as_cassette(cassette, cassette_option)
    if cassette is not None and cassette_option is not None:
        raise ConfigError("give the cassette once: as the argument or with --cassette")
    scenario_file = scenario if scenario is not None else _scenario_of(cassette)  # type: ignore[arg-type]
    loaded = load_scenario(scenario_file)
    settings = settings_for(ctx, {"data_dir": data_dir}, loaded)
    path = cassette or cassette_path(settings, loaded.scenario.name, cassette_option)
    if not os.path.lexists(path):  # a directory, FIFO or symlink loop there: read_cassette says which
        from tvdb.errors import CassetteError
        from tvdb.recording.session import record_hint

        custom = path if cassette_option is not None else None
        raise CassetteError(f"{path}: no such cassette; {record_hint(str(scenario_file), custom)}")
    recorded = read_cassette(path).tvdb  # a hostile or malformed cassette fails before a run is created
    tape = Tape(path=path, record_mode="none", scenario=loaded.scenario.name, scenario_path=str(loaded.path),
                recorded=recorded)  # its metadata: the services it was recorded with
    code = _drive(lambda a: start_run(loaded, settings, clock=a[0], hooks=a[1], tape=tape), fmt=chosen,
                  progress=progress, base=loaded.path.parent, again=True, resume_cmd=rerun_command,
                  show_cmd=lambda r: show_command(ctx, r, data_dir), clock=VirtualClock())
    raise typer.Exit(code)


@app.command("check", short_help="Check cassettes: loadable and free of API keys (exit 1 if not).")
def check(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Cassette files (or folders of them) to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check that each cassette loads safely (valid YAML, vcrpy's structure, no non-standard tags, no
    alias bomb, not nested past 64 levels, at most 256 MiB) and holds no key-shaped string (sk-…,
    llx-…, whsec_…, bearer tokens, the configured keys, also base64-encoded); for CI and pre-commit.

    Exit codes: 0 every file is a clean cassette; 1 a finding (a key, with file:line and a masked
    excerpt; a refused or unreadable file); 2 bad usage.
    """
    from tvdb.errors import CassetteError
    from tvdb.recording.scan import Finding, scan_file
    from tvdb.recording.session import configured_secrets
    from tvdb.recording.store import read_cassette

    secrets = configured_secrets(settings_for(ctx))
    files, findings = _cassette_files(paths)
    for path in files:
        try:
            read_cassette(path)  # what a replay would refuse, refused here first
        except CassetteError as exc:
            if "no such cassette" not in str(exc):  # a missing file: scan_file says it is unreadable
                findings.append(Finding(str(path), _line_of(str(exc), path), "refused", str(exc)))
            if any(m in str(exc) for m in ("not a cassette file", "a cassette may hold")):
                continue  # not a regular file, or too large to read: nothing to scan
        findings += scan_file(path, secrets)
    if as_json:
        rows = [{"file": f.file, "line": f.line, "kind": f.kind, "excerpt": f.excerpt} for f in findings]
        sys.stdout.write(json.dumps({"files": len(files), "findings": rows}, indent=2) + "\n")
    else:
        out = plain_console()
        for f in findings:
            out.print(data(str(f) if f.kind != "refused" else f.excerpt), soft_wrap=True)
        refused = {f.file for f in findings if f.kind == "refused"}
        unreadable = {f.file for f in findings if f.kind == "unreadable"}
        keys = sum(1 for f in findings if f.kind not in ("refused", "unreadable"))
        summary = f"{keys} key-shaped string(s)" if keys else "no key-shaped strings"
        # a file that cannot be read or loaded is not a key: say so rather than count it as one
        tail = (f"; {len(unreadable)} file(s) could not be read" if unreadable else "") + (
            f"; {len(refused)} file(s) refused (not a loadable cassette)" if refused else "")
        out.print(f"{summary} in {len(files)} file(s){tail}")
    raise typer.Exit(1 if findings else 0)


def _cassette_files(paths: list[Path]) -> tuple[list[Path], list[Finding]]:
    """The files `tvdb cassette check` reads: each path, or the `*.yml`/`*.yaml` files under a folder.
    A folder named like a cassette (`x.yaml/`) and a folder with no cassette in it are refused: a
    check that passes because it read nothing would hide a cassette that is not there."""
    from tvdb.recording.scan import Finding

    files: list[Path] = []
    refused: list[Finding] = []
    for p in paths:
        if not p.is_dir():
            files.append(p)
        elif p.suffix.lower() in (".yaml", ".yml"):
            refused.append(Finding(str(p), 0, "refused", f"{p}: not a cassette file: it is a directory"))
        elif found := sorted(f for f in p.rglob("*.y*ml") if f.suffix.lower() in (".yaml", ".yml")):
            files += found
        else:
            refused.append(Finding(str(p), 0, "refused", f"{p}: a folder with no cassette (*.yaml, *.yml) "
                                                            "under it; pass the folder your cassettes are in"))
    return files, refused


def _summaries(paths: list[Path]) -> tuple[list[CassetteSummary], list[str]]:
    from tvdb.errors import CassetteError
    from tvdb.recording.info import summarize_path

    out, errors = [], []
    for path in paths:
        try:
            out.append(summarize_path(path))
        except CassetteError as exc:
            errors.append(str(exc))
    return out, errors


def _render(summaries: list[CassetteSummary], errors: list[str], *, now: Any, max_age: Any, fmt: Format,
            detail: bool) -> int:
    from tvdb.money import format_usd

    stale = [s for s in summaries if max_age is not None and s.age(now) > max_age]
    cols = [Col("cassette", Kind.PATH), Col("scenario", Kind.TEXT), Col("interactions", Kind.NUM),
            Col("by service", Kind.TEXT), Col("age", Kind.NUM, key="age_days"),
            Col("recorded cost", Kind.MONEY, key="recorded_cost_usd"), Col("stale", Kind.WORD)]
    rows = [[str(s.path), s.scenario or "–", str(s.interactions),
             ", ".join(f"{k} {v}" for k, v in s.by_service.items()), f"{s.age(now).total_seconds() / 86400:.1f} d",
             "unknown" if s.recorded_cost_usd is None else format_usd(s.recorded_cost_usd),
             "STALE" if s in stale else ""] for s in summaries]
    table = TableData(cols, rows, title="Cassettes")
    emit_table(make_console(), table, fmt, json_obj={
        "cassettes": [s.as_json(now, max_age) for s in summaries], "errors": errors,
        "stale": [str(s.path) for s in stale]})
    if fmt in (Format.TABLE, Format.PLAIN):
        out = plain_console()
        if detail:
            for s in summaries:
                out.print(f"{s.path}: recorded {s.recorded_at:%Y-%m-%d %H:%M} UTC ({s.recorded_at_source}); "
                          f"scenario file {s.scenario_path or '–'}; versions "
                          + (", ".join(f"{k} {v}" for k, v in s.versions.items()) or "–"), soft_wrap=True)
        for e in errors:
            out.print(f"error: {e}", soft_wrap=True)
        if stale:
            out.print(f"{len(stale)} cassette(s) older than the maximum age: re-record them with "
                      "`tvdb run SCENARIO --record`", soft_wrap=True)
    return 1 if stale or errors else 0


def _max_age(text: str | None) -> Any:
    if text is None:
        return None
    from tvdb.ledger.periods import parse_duration

    return parse_duration(text, what="--max-age")


MaxAge = Annotated[str | None, typer.Option("--max-age", help="Flag cassettes older than this (e.g. 30d); exit 1.")]


@app.command("list", short_help="What each cassette holds, its age and recorded cost.")
def list_cassettes(
    ctx: typer.Context,
    folder: Annotated[Path | None, typer.Argument(
        metavar="FOLDER", help="Folder (default: recording.cassette_dir).")] = None,
    max_age: MaxAge = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    now: NowOption = None,
) -> None:
    """What each cassette holds: interactions per service, scenario, age, recorded cost.

    Exit codes: 0 listed; 1 a cassette is older than --max-age, or cannot be loaded; 2 bad usage.
    """
    root = folder or settings_for(ctx).recording.cassette_dir
    paths = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml")) if root.is_dir() else []
    summaries, errors = _summaries(paths)
    raise typer.Exit(_render(summaries, errors, now=now_or(now), max_age=_max_age(max_age),
                             fmt=pick_format(fmt, as_json),
                             detail=False))


@app.command("show", short_help="One cassette in detail.")
def show(
    cassette: Annotated[Path, typer.Argument(help="The cassette file.")],
    max_age: MaxAge = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    now: NowOption = None,
) -> None:
    """One cassette in detail: scenario, recorded_at, versions, interactions per service, recorded cost."""
    summaries, errors = _summaries([cassette])
    if errors and not summaries:
        from tvdb.errors import CassetteError

        raise CassetteError(errors[0])
    raise typer.Exit(_render(summaries, errors, now=now_or(now), max_age=_max_age(max_age),
                             fmt=pick_format(fmt, as_json),
                             detail=True))


def _line_of(message: str, path: Path) -> int:
    """The line a CassetteError names (`path:12: …`), else 0."""
    rest = message[len(str(path)):] if message.startswith(str(path)) else ""
    digits = rest[1:].split(":", 1)[0] if rest.startswith(":") else ""
    return int(digits) if digits.isdigit() else 0


app.command("drift", short_help="Replay a sample of recorded requests live and report drift (exit 1).")(drift)


def register(application: typer.Typer) -> None:
    from tvdb.cli.replay_all import PLAY, ReplayCommand, ReplayGroup, merge

    group = typer.Typer(cls=ReplayGroup, rich_markup_mode=None,
                        context_settings={"help_option_names": ["-h", "--help"]})
    group.command(PLAY, cls=ReplayCommand, hidden=True)(replay)
    group.command("merge", short_help="Merge the shards' JUnit/JSON reports of `tvdb replay --all --shard`.")(merge)
    # short helps: tvdb.cli.lazy.COMMANDS
    application.add_typer(group, name="replay")
    application.add_typer(app, name="cassette")
