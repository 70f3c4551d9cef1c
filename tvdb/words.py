"""Counts in English, for every message and report: `1 vector`, `3 vectors`, `1 retry`, `2 retries`.

A leaf (stdlib only) so that every layer can use it: the pipeline writes event details with it and the
CLI prints its summaries with it."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None, *, grouped: bool = False) -> str:
    """`n` and `noun`, in the plural (`plural`, else noun + "s") unless n is exactly 1; `grouped` writes n
    with thousands separators (`1,234 tokens`)."""
    number = f"{n:,}" if grouped else str(n)
    return f"{number} {noun}" if n == 1 else f"{number} {plural or noun + 's'}"
