"""`tvdb alerts …`: list, acknowledge and mute budget and error-rate alerts."""

from __future__ import annotations

import typer

app = typer.Typer(help="Budget and error-rate alerts.", no_args_is_help=True)
