"""`tvdb cost …`: spend reports, pruning and repricing of the ledger (issue: money under control)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Cost ledger: reports, pruning, repricing.", no_args_is_help=True)
