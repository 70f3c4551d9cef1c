"""The storage layer, below every other tvdb layer: the engine-neutral connection interface the
stores are written against (`Database`), the migration history types, and the engines.

Only `tvdb.errors` and `tvdb.domain` are imported from here; nothing here knows any table.
"""

from tvdb.storage.base import Cursor, Database, Engine, insert, marks, savepoint, transaction, update
from tvdb.storage.migrations import History, Migration, Step, step

__all__ = ["Cursor", "Database", "Engine", "History", "Migration", "Step", "insert", "marks", "savepoint", "step",
           "transaction", "update"]
