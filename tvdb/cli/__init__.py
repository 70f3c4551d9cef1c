"""The `tvdb` command line. Commands are thin: parse options, call one function, render the result.

Only this package imports typer and rich. `tvdb --help` and `tvdb --version` import only what they
print, so a command module (tvdb/cli/<command>.py) imports at module level nothing but typer, rich,
`tvdb.cli.*`, `tvdb.errors`, `tvdb.domain`, `tvdb.bounds` and `tvdb.money`; everything a command
needs to *run* (asyncio, numpy, pydantic, SDKs, sqlite-utils, tvdb.config / pipeline / services /
ledger / db / history) is imported inside the command function, names for annotations under
`if TYPE_CHECKING:`. tests/test_startup.py fails when a module breaks this, and
`python bench/startup.py` measures the start-up against a minimal Typer app.
"""

from __future__ import annotations

import sys

from tvdb.cli.app import app, handle_errors

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: runs the app and maps tvdb errors to exit codes in one place."""
    sys.exit(handle_errors(app))
