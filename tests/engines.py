"""Opening a test database on either engine from one string (importable by spawned children)."""

from __future__ import annotations

from tvdb.storage import Database


def open_target(target: str, *, max_size: int = 4) -> Database:
    """`target` is a SQLite file path or a postgresql:// URL; the database with the current schema."""
    from tvdb.db import open_db, open_pg

    if target.startswith(("postgresql://", "postgres://")):
        return open_pg(target, max_size=max_size)
    return open_db(target)
