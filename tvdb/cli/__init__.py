"""The `tvdb` command line. Commands are thin: parse options, call one function, render the result.

Only this package imports typer and rich; heavy libraries (numpy, openai, pypdf) are imported
inside the functions that use them so that `tvdb --help` starts fast.
"""

from __future__ import annotations

import sys

from tvdb.cli.app import app, handle_errors

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: runs the app and maps tvdb errors to exit codes in one place."""
    sys.exit(handle_errors(app))
