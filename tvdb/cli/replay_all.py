"""`tvdb replay --all [DIR]` (every scenario with a cassette, in parallel, one shard of them) and
`tvdb replay merge` (the shards' JUnit/JSON as one); the `replay` command group that holds both."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from tvdb.cli.output import Format, FormatOption, JsonOption, as_written, make_console, pick_format
from tvdb.words import counted

if TYPE_CHECKING:
    from tvdb.scenarios.replay import ReplayEnv

PLAY = "replay"  # the group's default command: `tvdb replay X` is `tvdb replay replay X`
# (a cassette file named `merge` or `replay` in the working directory: say ./merge)


class ReplayGroup(TyperGroup):
    """`tvdb replay merge …` runs the merge; anything else is the replay command itself."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [PLAY, *args]
        return super().parse_args(ctx, args)


class _ReplayContext(typer.Context):
    """The default command's context names it as the user typed it: `Try 'tvdb replay -h'` after a bad
    option (`--jobs 0`), and `"command": "tvdb replay"` in `--json` errors, not `tvdb replay replay`."""

    @property
    def command_path(self) -> str:
        parent = self.parent
        return str(parent.command_path) if parent is not None else str(super().command_path)


class ReplayCommand(TyperCommand):
    """Its usage line reads `tvdb replay [OPTIONS] …`, not `tvdb replay replay`."""

    context_class = _ReplayContext

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        formatter.write_usage(ctx.parent.command_path if ctx.parent else ctx.command_path,
                              " ".join(self.collect_usage_pieces(ctx)))


def replay_env(ctx: typer.Context, data_dir: Path | None) -> ReplayEnv:
    from tvdb.scenarios.replay import ReplayEnv

    obj = ctx.obj or {}
    chosen = data_dir if data_dir is not None else obj.get("data_dir")
    return ReplayEnv(cwd=Path.cwd(), environ=dict(os.environ), config_file=obj.get("config"),
                     data_dir=Path(chosen).absolute() if chosen is not None else None)


def _write(path: Path, text: str | bytes, *, what: str, append: bool = False) -> None:
    """Write a report (`append`: add to what the file holds). Raises ConfigError."""
    from tvdb.errors import ConfigError

    # masked as the terminal is: a key-shaped scenario name must not reach a published summary
    data = as_written(text if isinstance(text, str) else text.decode("utf-8")).encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab" if append else "wb") as f:
            f.write(data)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write it: {exc.strerror or exc}") from None


def write_reports(doc: dict[str, Any], *, junit: Path | None, summary_md: Path | None) -> None:
    from tvdb.cli.render_suite import summary_markdown
    from tvdb.scenarios.junit import junit_xml

    if junit is not None:
        props = {"jobs": str(doc.get("jobs"))} | ({"shard": str(doc["shard"])} if doc.get("shard") else {})
        name = "tvdb replay" + (f" (shard {doc['shard']})" if doc.get("shard") else "")
        _write(junit, junit_xml(doc["runs"], now=dt.datetime.now(dt.UTC), hostname=socket.gethostname(),
                                properties=props, suite_name=name), what="--junit")
    if summary_md is not None:
        # always appended: `$GITHUB_STEP_SUMMARY` is shared by every step of a job, as GitHub asks, and
        # a summary file named some other way should not lose what an earlier step wrote either
        _write(summary_md, summary_markdown(doc), what="--summary-md", append=True)


def replay_all(ctx: typer.Context, folder: Path | None, *, fmt: Format, data_dir: Path | None, jobs: int | None,
               shard: str | None, require_cassettes: bool, junit: Path | None, summary_md: Path | None) -> int:
    """Discover, select this shard, replay in parallel, write the reports, print; returns the exit code."""
    from rich.text import Text

    from tvdb.cli.render_suite import progress_line, render_suite
    from tvdb.errors import ConfigError
    from tvdb.scenarios.suite import default_jobs, parse_shard, plan, run_suite, select_shard, suite_json, timed

    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give at least 1 (the default is the CPU count, {default_jobs()})")
    workers = jobs or default_jobs()
    split = parse_shard(shard) if shard else None
    env = replay_env(ctx, data_dir)
    root = folder if folder is not None else Path("scenarios")
    chosen = select_shard(plan(root, env), split)
    err = make_console(stderr=True, markup=False)
    if split:
        err.print(f"shard {split[0]}/{split[1]}: {counted(len(chosen), 'scenario')}", soft_wrap=True)

    def done(outcome: Any) -> None:
        err.print(progress_line(outcome.as_json()), soft_wrap=True)

    outcomes, wall = timed(lambda: run_suite(chosen, env, jobs=workers, require_cassettes=require_cassettes,
                                             on_done=done))
    doc = suite_json(outcomes, shard=split, jobs=workers, wall_s=wall)
    write_reports(doc, junit=junit, summary_md=summary_md)
    render_suite(make_console(), doc, fmt)
    if fmt is not Format.JSON:
        err.print(Text(f"{wall:.2f} s with {min(workers, max(len(chosen), 1))} job(s)"), soft_wrap=True)
    return int(doc["totals"]["exit_code"])


# -- tvdb replay merge ---------------------------------------------------------------------------

def _merge_json(files: list[tuple[str, bytes]]) -> dict[str, Any]:
    from tvdb.errors import ConfigError
    from tvdb.scenarios.suite import totals

    runs: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    wall = 0.0
    jobs = 0
    for source, data in files:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ConfigError(f"{source}: not JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
            raise ConfigError(f"{source}: not the output of `tvdb replay --all --json` (no \"runs\" list)")
        for run in doc["runs"]:
            key = str(run.get("scenario_path"))
            if key in seen:
                raise ConfigError(f"{source} and {seen[key]} both replayed {key}: the shards overlap "
                                  "(run every shard with the same N and scenarios)")
            seen[key] = source
            runs.append(run)
        wall = max(wall, float((doc.get("totals") or {}).get("wall_s") or 0))
        jobs = max(jobs, int(doc.get("jobs") or 0))
    runs.sort(key=lambda r: str(r.get("scenario_path")))
    return {"runs": runs, "totals": {**totals(runs), "wall_s": wall}, "shard": None, "jobs": jobs,
            "merged": [s for s, _ in files]}


def merge(
    files: Annotated[list[Path], typer.Argument(
        metavar="REPORT...",
        help="The shards' reports: their --json output files, or their --junit files (not both kinds).")],
    junit: Annotated[Path | None, typer.Option("--junit", help="Write the merged JUnit XML here.")] = None,
    summary_md: Annotated[Path | None, typer.Option(
        "--summary-md", help="Write the merged Markdown summary here (from JSON inputs).")] = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
) -> None:
    """Merge the shards of a `tvdb replay --all --shard I/N` matrix into one report.

    From JSON inputs (each shard's `--json` output): the merged `{"runs", "totals"}` object (with
    --json), a JUnit file (--junit) and a Markdown summary (--summary-md); from JUnit inputs: one
    JUnit file. A scenario in two shards is an error (exit 2). Exit code: the merged suite's, as
    `tvdb replay --all` would give for all the scenarios (for JUnit inputs: 1 on any failure or error).

    \b
    Examples:
      tvdb replay merge shard-*/replay.json --junit replay.xml --summary-md "$GITHUB_STEP_SUMMARY"
      tvdb replay merge shard-*/replay.xml --junit replay.xml
    """
    from tvdb.cli.render_suite import render_suite
    from tvdb.errors import ConfigError
    from tvdb.scenarios.junit import merge_junit, parse_junit

    chosen = pick_format(fmt, as_json)
    inputs: list[tuple[str, bytes]] = []
    for path in files:
        try:
            inputs.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    kinds = {"xml" if data.lstrip().startswith(b"<") else "json" for _, data in inputs}
    if len(kinds) > 1:
        raise ConfigError("give either the shards' JSON files or their JUnit files, not a mix")
    if kinds == {"xml"}:
        if junit is None or summary_md is not None or chosen is Format.JSON:
            raise ConfigError("JUnit inputs merge into a JUnit file only: add --junit OUT (the Markdown summary "
                              "and --json need the shards' --json files)")
        merged = merge_junit(inputs)
        _write(junit, merged, what="--junit")
        root = parse_junit(merged, str(junit))
        failed = int(root.get("failures") or 0) + int(root.get("errors") or 0)
        tests = counted(int(root.get('tests') or 0), 'testcase')
        make_console().print(f"merged {counted(len(inputs), 'file')}: {tests}, "
                             f"{counted(int(root.get('failures') or 0), 'failure')}, "
                             f"{counted(int(root.get('errors') or 0), 'error')} → {junit}",
                             soft_wrap=True, markup=False)
        raise typer.Exit(1 if failed else 0)
    doc = _merge_json(inputs)
    write_reports(doc, junit=junit, summary_md=summary_md)
    render_suite(make_console(), doc, chosen)
    raise typer.Exit(int(doc["totals"]["exit_code"]))
