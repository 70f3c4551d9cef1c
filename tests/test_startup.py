"""`tvdb --help`, `tvdb --version` and every command's `--help` import only what they print.

Each check runs in a fresh interpreter (this one has imported everything already) and reads
`sys.modules` after the help is printed. A command module that imports asyncio, numpy, pydantic,
an SDK or sqlite-utils at module level fails here: import it inside the command function instead
(see the pattern in tvdb/cli/__init__.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

# Libraries a command needs only when it runs (and the modules of tvdb that pull them in).
HEAVY = (
    "asyncio", "numpy", "pydantic", "openai", "httpx", "httpx2", "sqlite_utils", "sqlite3", "tiktoken", "yaml",
    "pypdf", "docx", "vcr", "tenacity", "zoneinfo", "tvdb.pipeline", "tvdb.services", "tvdb.ledger", "tvdb.db",
    "tvdb.scenarios", "tvdb.history", "tvdb.emulator", "tvdb.config", "tvdb.settings",
)

_PROBE = """
import json, sys
import typer
from tvdb.cli import app, handle_errors

def paths(command, prefix):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from paths(sub, [*prefix, name])

which = sys.argv[1]
before = set(sys.modules)
if which == "all":
    from tvdb.cli.lazy import load_all
    codes = [handle_errors(app, [*p, "--help"]) for p in paths(load_all(typer.main.get_command(app)), [])]
else:
    codes = [handle_errors(app, [which])]
print("\\x00" + json.dumps({"codes": codes, "modules": sorted(sys.modules), "count": len(codes)}))
"""


def _probe(which: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE, which], capture_output=True, text=True, timeout=120,
                          check=True)
    result: dict[str, object] = json.loads(done.stdout.rsplit("\x00", 1)[1])
    return result


# Typer ≥ 0.22 coerces parameter values with pydantic (typer._adapters, which pulls in zoneinfo)
# as soon as a sub-command's options are parsed, `--help` included: any Typer app pays this.
TYPER_OWN = ("pydantic", "zoneinfo")


def _heavy(modules: object, allowed: tuple[str, ...] = ()) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY if h not in allowed)]


def test_top_level_help_and_version_import_nothing_heavy() -> None:
    for flag in ("--help", "--version"):
        result = _probe(flag)
        assert result["codes"] == [0]
        assert "tvdb.cli.app" in result["modules"]  # type: ignore[operator]  (the probe did load the CLI)
        assert _heavy(result["modules"]) == [], flag


def test_every_commands_help_imports_nothing_heavy() -> None:
    result = _probe("all")
    count = result["count"]
    assert isinstance(count, int) and count >= 20  # run, resume, emulate, doctor, cost …, alerts …, runs …
    assert set(result["codes"]) == {0}  # type: ignore[arg-type]
    assert _heavy(result["modules"], allowed=TYPER_OWN) == []


def test_the_probe_sees_a_heavy_import() -> None:
    # the check itself can fail: a command that runs (here `doctor`) does import what it needs
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from tvdb.cli.doctor import doctor; import tvdb.services.doctor; "
         "print(' '.join(sys.modules))"], capture_output=True, text=True, timeout=120, check=True)
    assert "asyncio" in _heavy(done.stdout.split())
