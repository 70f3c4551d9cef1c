"""The lazy command table (tvdb.cli.lazy): `tvdb --help` lists every command from COMMANDS without
importing a command module, and the table cannot drift from the modules that define the commands."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import typer

from tvdb.cli.app import app
from tvdb.cli.lazy import COMMANDS, defined_commands, load_all

MODULES = sorted({e.module for e in COMMANDS})
GROUPS = ("cost", "alerts", "runs", "ledger", "webhook", "cassette")  # replay: its own help page, below


def _tvdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tvdb", *args], capture_output=True, text=True, timeout=120)


def _listed(help_text: str) -> dict[str, str]:
    """{name: short help} of the "Commands:" section of a click help page (wrapped lines joined)."""
    section = help_text.split("\nCommands:\n", 1)[1]
    rows: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        if (m := re.match(r"^  (\S+)\s*(.*)$", line)) is not None:
            name = m.group(1)
            rows[name] = m.group(2).strip()
        elif line.startswith("    ") and name:
            rows[name] = f"{rows[name]} {line.strip()}".strip()
    return rows


def test_the_table_names_exactly_the_commands_the_modules_define() -> None:
    defined = {name: module for module in MODULES for name in defined_commands(module)}
    assert defined == {e.name: e.module for e in COMMANDS}


@pytest.mark.parametrize("module", MODULES)
def test_no_module_sets_its_own_short_help(module: str) -> None:
    # the table is the one source: a short help set in the module too would be a second one to drift
    assert {name: cmd.short_help for name, cmd in defined_commands(module).items()} == dict.fromkeys(
        [e.name for e in COMMANDS if e.module == module])


def test_top_level_help_lists_the_table_and_imports_no_command_module() -> None:
    done = _tvdb("--help")
    assert done.returncode == 0, done.stderr
    assert _listed(done.stdout) == {e.name: e.short_help for e in COMMANDS}
    assert list(_listed(done.stdout))[:3] == ["run", "resume", "emulate"]  # the table's order


def test_importtime_of_help_and_version_shows_no_heavy_or_command_module() -> None:
    heavy = ("asyncio", "numpy", "pydantic", "sqlite_utils", "sqlite3", "httpx", "httpx2", "openai", "yaml",
             "tiktoken", "tvdb.cli.run", "tvdb.cli.cost", "tvdb.cli.cassette", "tvdb.cli.doctor")
    for flag in ("--help", "--version"):
        done = subprocess.run([sys.executable, "-X", "importtime", "-m", "tvdb", flag], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                    if line.startswith("import time:") and line.count("|") == 2}
        assert "tvdb.cli.app" in imported and "typer" in imported  # the probe reads real output
        assert sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in heavy)) == [], flag


def _tree(command: Any) -> dict[str, Any]:
    return {name: _tree(sub) if hasattr(sub, "commands") else sub.get_short_help_str(200)
            for name, sub in command.commands.items() if not sub.hidden}


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_help_lists_the_same_commands_as_the_full_tree(group: str) -> None:
    full = _tree(load_all(typer.main.get_command(app)))[group]
    done = _tvdb(group, "--help")
    assert done.returncode == 0, done.stderr
    listed = _listed(done.stdout)
    assert list(listed) == list(full) and len(full) >= 1
    for name, text in listed.items():  # a docstring's first sentence is cut to the terminal's width
        assert isinstance(full[name], str) and full[name].startswith(text.removesuffix("...")), name


def test_the_full_tree_keeps_every_command() -> None:
    tree = _tree(load_all(typer.main.get_command(app)))
    assert list(tree) == [e.name for e in COMMANDS]
    assert {e.name: tree[e.name] if isinstance(tree[e.name], str) else e.short_help for e in COMMANDS} == {
        e.name: e.short_help for e in COMMANDS}
    assert set(tree["cost"]) == {"report", "prune", "reprice", "reconcile", "advise"}
    assert set(tree["runs"]) == {"list", "show", "compare"}


def test_usage_errors_keep_their_exit_code_through_the_lazy_group() -> None:
    unknown = _tvdb("no-such-command")
    assert unknown.returncode == 2 and "No such command 'no-such-command'" in unknown.stderr
    missing = _tvdb("run")
    assert missing.returncode == 2 and "SCENARIO" in missing.stderr
    suggest = _tvdb("runz", "--json")
    assert suggest.returncode == 2 and '"exit_code": 2' in suggest.stdout


def test_replay_keeps_its_own_help_page() -> None:
    done = _tvdb("replay", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: tvdb replay [OPTIONS] [CASSETTE|DIR]") and "--all" in done.stdout
