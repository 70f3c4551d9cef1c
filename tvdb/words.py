"""Counts in English, for every message and report: `1 vector`, `3 vectors`, `1 retry`, `2 retries`.

A leaf (stdlib only) so that every layer can use it: the pipeline writes event details with it and the
CLI prints its summaries with it."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and `noun`, in the plural (`plural`, else noun + "s") unless n is exactly 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
