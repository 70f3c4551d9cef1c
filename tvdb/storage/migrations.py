"""The schema's migration history: one ordered list of named steps, each made of the parts its
tables' owners contribute (a store module declares the migrations of the tables it owns).

A step's name is its key in every engine (SQLite records applied names in `_sqlite_migrations`
through sqlite-utils; another engine keeps its own table), so a database created by any earlier
tvdb finds exactly the steps it has not run yet. Steps never change once released: a schema
change is a new step, appended.

Each part carries the step for each engine: `sqlite` is a function over a `sqlite_utils.Database`
(sqlite-utils builds the DDL), `postgresql` the statements the PostgreSQL engine runs in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlite_utils
from sqlite_utils.migrations import Migrations

SqliteMigration = Callable[[sqlite_utils.Database], None]


@dataclass(frozen=True, slots=True)
class Migration:
    """One owner's part of a step. `owner` names the module for docs and errors."""

    owner: str
    sqlite: SqliteMigration
    postgresql: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    parts: tuple[Migration, ...]


def step(name: str, *parts: Migration) -> Step:
    return Step(name, parts)


@dataclass(frozen=True)
class History:
    """The ordered steps of one database (`name` is the migration set, "tvdb")."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate migration names in {names}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def sqlite(self) -> Migrations:
        """The history as a sqlite-utils migration set (applied by `tvdb.storage.sqlite`)."""
        migrations = Migrations(self.name)
        for s in self.steps:
            migrations(name=s.name)(_run_parts(s.name, [p.sqlite for p in s.parts]))
        return migrations


def _run_parts(name: str, parts: Sequence[SqliteMigration]) -> SqliteMigration:
    def run(db: sqlite_utils.Database) -> None:
        for part in parts:
            part(db)

    run.__name__ = name
    return run
