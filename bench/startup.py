"""Start-up time: `tvdb --help` and `tvdb --version` against the floor for a Typer CLI.

    python bench/startup.py          (no arguments; about a minute)

The floor is a minimal Typer app generated from tvdb's own command tree (the same sub-apps,
commands and help texts, each command a no-op, the same `rich_markup_mode`, importing Rich's
console as tvdb's output layer does), written to a temporary file and run by the same interpreter.
Each command line runs RUNS times in fresh processes, interleaved (tvdb, floor, tvdb, ...) so a
change in the machine's load hits both alike; the median counts. The last line is
`tvdb --help / minimal typer app = X.XX`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS = 15


def _tree(command: Any) -> dict[str, Any]:
    """{name: help} for commands and {name: {...}} for groups, from tvdb's click command."""
    out: dict[str, Any] = {}
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        out[name] = _tree(sub) if hasattr(sub, "commands") else (sub.help or "")
    return out


def _source(tree: dict[str, Any], help_text: str) -> str:
    lines = ["import typer", "import rich.console  # noqa: F401  (tvdb's output layer renders with Rich)",
             "", f"app = typer.Typer(name='tvdb', help={help_text!r}, no_args_is_help=True, rich_markup_mode=None)",
             "", "@app.callback()", "def _main(version: bool = typer.Option(False, '--version')) -> None:",
             "    pass", ""]
    counter = 0

    def emit(parent: str, node: dict[str, Any]) -> None:
        nonlocal counter
        for name, value in node.items():
            counter += 1
            if isinstance(value, dict):
                var = f"sub{counter}"
                lines.append(f"{var} = typer.Typer(no_args_is_help=True, rich_markup_mode=None)")
                lines.append(f"{parent}.add_typer({var}, name={name!r})")
                emit(var, value)
            else:
                lines.append(f"@{parent}.command(name={name!r}, help={value!r})")
                lines.append(f"def cmd{counter}() -> None:\n    pass\n")

    emit("app", tree)
    lines += ["", "if __name__ == '__main__':", "    app()"]
    return "\n".join(lines) + "\n"


def _time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    import compileall

    import typer

    from tvdb.cli.app import app
    from tvdb.cli.lazy import load_all

    command = load_all(typer.main.get_command(app))
    tvdb = str(Path(sys.executable).with_name("tvdb"))
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "floor.py"
        floor.write_text(_source(_tree(command), command.help or ""), encoding="utf-8")
        cases = {"tvdb --help": [tvdb, "--help"], "tvdb --version": [tvdb, "--version"],
                 "floor --help": [sys.executable, str(floor), "--help"]}
        # the bytecode an install has: a warm-up run writes none where PYTHONDONTWRITEBYTECODE is set
        compileall.compile_dir(Path(__file__).resolve().parents[1] / "tvdb", quiet=1)
        for args in cases.values():  # warm the file cache and the bytecode
            _time(args)
        print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(RUNS):
            for name, args in cases.items():
                times[name].append(_time(args))
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name, values in times.items():
        print(f"{name:15s} median {statistics.median(values) * 1000:6.0f} ms  min {min(values) * 1000:6.0f} ms")
    ratio = statistics.median(times["tvdb --help"]) / statistics.median(times["floor --help"])
    print(f"tvdb --version / minimal typer app = "
          f"{statistics.median(times['tvdb --version']) / statistics.median(times['floor --help']):.2f}")
    print(f"tvdb --help / minimal typer app = {ratio:.2f}")


if __name__ == "__main__":
    main()
