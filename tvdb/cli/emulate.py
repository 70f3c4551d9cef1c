"""`tvdb emulate`: serve wire-exact fakes of the paid APIs on 127.0.0.1."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
