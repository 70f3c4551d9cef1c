"""The command table and the lazy group: `tvdb --help` lists every command without importing one.

`COMMANDS` is the one place a first-level command's name, module and short help live. The root
group lists names and short helps from it; a command's module (tvdb/cli/<module>.py, with its
Typer options, and through them pydantic, Rich tables ...) is imported only when that command, or
its `--help`, is asked for. A module provides its commands either with `register(app)` (plain
commands, or groups it builds itself) or with a Typer `app` (a sub-app named like the entry).
tests/test_cli_lazy.py checks that the table and the modules agree: the same names, and each
loaded command carries the table's short help.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from collections.abc import Sequence

    from typer.core import TyperCommand

    Command = TyperCommand | TyperGroup


@dataclass(frozen=True)
class Entry:
    """A first-level command: `name`, the module that defines it, and its one-line help."""

    name: str
    module: str
    short_help: str


# In the order `tvdb --help` lists them.
COMMANDS: tuple[Entry, ...] = (
    Entry("run", "tvdb.cli.run", "Run a scenario (mock, real or hybrid) and check its expectations."),
    Entry("resume", "tvdb.cli.run", "Continue an interrupted or deferred run."),
    Entry("emulate", "tvdb.cli.emulate", "Serve wire-exact OpenAI embeddings and LlamaParse v2 APIs on loopback."),
    Entry("doctor", "tvdb.cli.doctor", "Check that this machine is ready for the configured modes."),
    Entry("report", "tvdb.cli.report", "Write the HTML dashboard (charts, runs, spend)."),
    Entry("logs", "tvdb.cli.logs", "Events and calls of one job or run, in time order."),
    Entry("cost", "tvdb.cli.cost", "Cost ledger: report, advise, reconcile, reprice, prune."),
    Entry("alerts", "tvdb.cli.alerts", "Budget and error-rate alerts: list, ack, mute, test, check."),
    Entry("runs", "tvdb.cli.runs", "Run history: list, show, compare."),
    Entry("ledger", "tvdb.cli.ledger", "The database as a whole: migrate the SQLite ledger to PostgreSQL."),
    Entry("webhook", "tvdb.cli.webhook", "LlamaCloud webhooks: serve a verifying receiver."),
    Entry("replay", "tvdb.cli.cassette", "Replay a scenario (or --all) from its cassette: real clients, no network."),
    Entry("cassette", "tvdb.cli.cassette", "Cassettes: check for keys, list, show, drift."),
)
BY_NAME: dict[str, Entry] = {e.name: e for e in COMMANDS}


def module_commands(module_name: str, rich_markup_mode: Any = None) -> dict[str, Command]:
    """The click commands `module_name` defines, by name, each in COMMANDS with the table's short
    help (the table is its only source)."""
    commands = defined_commands(module_name, rich_markup_mode)
    for name, command in commands.items():
        if name in BY_NAME:
            command.short_help = BY_NAME[name].short_help
        accept_no_progress(command)
    return commands


def accept_no_progress(command: Any) -> None:
    """Give `command` (and its subcommands) without a progress display a hidden `--progress/--no-progress`
    that does nothing: CI scripts pass `--no-progress` to every command, and one that shows no progress
    must not refuse it."""
    for sub in getattr(command, "commands", {}).values():
        accept_no_progress(sub)
    if not any("--no-progress" in param.secondary_opts for param in command.params):
        command.params.append(_ignored_progress_option())


def _ignored_progress_option() -> Any:
    """The option as Typer builds it (its click class differs between Typer versions), not passed on."""
    template = typer.Typer()

    @template.command()
    def _(progress: bool = typer.Option(True, "--progress/--no-progress", hidden=True,
                                        help="No effect: this command shows no progress.")) -> None: ...

    option = typer.main.get_command(template).params[0]
    option.expose_value = False
    return option


def defined_commands(module_name: str, rich_markup_mode: Any = None) -> dict[str, Command]:
    """The click commands `module_name` defines, by name, as its module builds them (built the way
    Typer builds a sub-app)."""
    module = importlib.import_module(module_name)
    holder = typer.Typer(rich_markup_mode=rich_markup_mode)
    if hasattr(module, "register"):
        module.register(holder)
    else:
        for entry in COMMANDS:
            if entry.module == module_name:
                holder.add_typer(module.app, name=entry.name)
    return dict(typer.main.get_group(holder).commands)  # type: ignore[arg-type]


class LazyGroup(TyperGroup):
    """A Typer group whose first-level commands come from COMMANDS and load on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [e.name for e in COMMANDS] + [n for n in self.commands if n not in BY_NAME]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in BY_NAME:
            self.commands.update(module_commands(BY_NAME[cmd_name].module, self.rich_markup_mode))
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Click's command list, from the table: nothing is imported to print it."""
        rows: Sequence[tuple[str, str]] = [(e.name, e.short_help) for e in COMMANDS] + [
            (name, cmd.get_short_help_str()) for name, cmd in self.commands.items()
            if name not in BY_NAME and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def load_all(root: Any) -> Any:
    """`root` (the click group of tvdb's app) with every command of COMMANDS loaded into its
    `commands`: the whole command tree, for docs, tests and bench/startup.py. Imports every module."""
    for entry in COMMANDS:
        root.get_command(None, entry.name)
    return root
