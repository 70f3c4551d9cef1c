"""The dependency rule, checked on the source: cli → scenarios → pipeline → services → ledger → storage,
never upwards; the storage layer knows no table; only composition roots open the database with its
schema; the migration history keeps its released names and order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tvdb"
LAYERS = ["cli", "scenarios", "pipeline", "services", "ledger", "storage"]
# modules that assemble every owner (the schema) and may therefore only be imported from the top
COMPOSITION_ROOTS = {"tvdb.db", "tvdb.schema"}
STORAGE_MAY_IMPORT = {"tvdb.errors", "tvdb.domain"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every tvdb module `path` imports (also inside functions and TYPE_CHECKING blocks), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return [(name, line) for name, line in out if name.split(".")[0] == "tvdb"]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


SOURCES = sorted(ROOT.rglob("*.py"))


def test_the_source_tree_is_found() -> None:
    assert {"tvdb.storage.base", "tvdb.ledger.budget", "tvdb.cli.app"} <= {_module(p) for p in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_import_points_up_the_layers(path: Path) -> None:
    here = _module(path)
    mine = _layer(here)
    upward = []
    for name, line in _imports(path):
        theirs = _layer(name)
        if mine and theirs and LAYERS.index(theirs) < LAYERS.index(mine):
            upward.append(f"{path.name}:{line} {here} → {name}")
        if any(name == root or name.startswith(root + ".") for root in COMPOSITION_ROOTS) and \
                mine not in (None, "cli", "scenarios") and here not in COMPOSITION_ROOTS:
            upward.append(f"{path.name}:{line} {here} → {name} (only cli and scenarios open the schema)")
        if mine == "storage" and not name.startswith("tvdb.storage") and \
                not any(name == m or name.startswith(m + ".") for m in STORAGE_MAY_IMPORT):
            upward.append(f"{path.name}:{line} {here} → {name} (storage imports only errors and domain)")
    assert upward == []


def test_the_budget_guard_takes_its_own_settings_not_the_whole_config() -> None:
    names = {name for name, _ in _imports(ROOT / "ledger" / "budget.py")}
    assert not [n for n in names if n.startswith(("tvdb.config", "tvdb.settings", "tvdb.services"))]


def test_the_migration_history_keeps_its_released_names_in_order() -> None:
    from tvdb.schema import HISTORY

    assert HISTORY.names == [
        "m001_core", "m002_reservations", "m003_budget_index", "m004_assumed_spend", "m010_alerts",
        "m011_usage_daily", "m012_reprices", "m013_run_owner", "m014_run_owner_started",
        "m015_usage_daily_assumed", "m020_run_metrics", "m021_views", "m030_vector_space",
        "m022_job_warnings",
    ]
    # every part is declared by the module that owns its tables, never by the storage layer
    owners = {part.owner for step in HISTORY.steps for part in step.parts}
    assert owners == {"tvdb.pipeline.jobs", "tvdb.pipeline.store", "tvdb.ledger.usage_store",
                      "tvdb.ledger.reservations", "tvdb.ledger.alert_store", "tvdb.history.views"}


def test_the_history_builds_every_owners_tables(tmp_path: Path) -> None:
    from tvdb.db import open_db
    from tvdb.schema import HISTORY

    db = open_db(tmp_path / "t.db")
    assert set(db.table_names()) >= {
        "runs", "jobs", "events", "job_stages", "pages", "chunks", "vectors", "usage", "usage_daily",
        "usage_reprices", "reservations", "alerts", "alert_deliveries", "alert_mutes"}
    assert set(db.view_names()) == {"daily_spend", "run_summary"}
    applied = [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
    assert applied == HISTORY.names
