"""Run `tvdb` in this process, as the console script would, and capture what it prints."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tvdb.cli.app import app, handle_errors

Cli = Callable[..., tuple[int, str, str]]


def in_process_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *leading: str) -> Cli:
    """`cli("runs", "--json")` → (exit code, stdout, stderr); `leading` arguments go first (e.g. --data-dir)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["tvdb", *leading, *args])
        code = handle_errors(app)
        out, err = capsys.readouterr()
        return code, out, err

    return run
