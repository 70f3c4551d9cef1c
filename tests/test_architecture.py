"""The dependency rule, checked on the source: cli → scenarios → pipeline → services → ledger → storage,
never upwards; the storage layer knows no table; only composition roots open the database with its
schema; the migration history keeps its released names and order."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tvdb"
LAYERS = ["cli", "scenarios", "pipeline", "services", "ledger", "storage"]
# modules that assemble every owner (the schema) and may therefore only be imported from the top
COMPOSITION_ROOTS = {"tvdb.db", "tvdb.schema"}
# tvdb.redaction: the stdlib-only leaf that masks the password of a PostgreSQL URL in messages
STORAGE_MAY_IMPORT = {"tvdb.errors", "tvdb.domain", "tvdb.redaction"}


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
        "m023_spec_without_webhook_url", "m031_covering_space_index", "m024_run_active_time",
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


# Every module allowed to hold SQL: the storage layer and the stores that own tables (README "Ledger").
STORE_MODULES = {
    "tvdb.pipeline.jobs", "tvdb.pipeline.store", "tvdb.ledger.usage_store", "tvdb.ledger.reservations",
    "tvdb.ledger.alert_store", "tvdb.history.store", "tvdb.history.views", "tvdb.history.advice_store",
}
_SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
                  r"CREATE\s+(TABLE|INDEX|VIEW)|DROP\s+(TABLE|INDEX|VIEW)|PRAGMA\s)", re.S)
_DB_CALLS = {"execute", "executemany", "executescript", "query", "table", "create_view"}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def sql_outside_stores(path: Path) -> list[str]:
    """`file:line what` for each SQL string, database call or sqlite-utils import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if _SQL.search(node.value):
                found.append(f"{path.name}:{node.lineno} SQL {node.value[:50]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _DB_CALLS:
            found.append(f"{path.name}:{node.lineno} .{node.func.attr}(…)")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.name}:{node.lineno} import {n}" for n in names if n.split(".")[0] in ("sqlite3",
                                                                                                   "sqlite_utils")]
    return found


# sqlite3 outside the stores: the doctor catches its error type when it reads a schema
_SQLITE_ERRORS_ONLY = {"tvdb.services.doctor"}


@pytest.mark.parametrize("path", [p for p in SOURCES if _module(p) not in STORE_MODULES
                                  and not _module(p).startswith("tvdb.storage") and _module(p) != "tvdb.db"],
                         ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_no_sql_outside_the_stores(path: Path) -> None:
    found = sql_outside_stores(path)
    if _module(path) in _SQLITE_ERRORS_ONLY:
        found = [f for f in found if not f.endswith(("import sqlite3",))]
    assert found == []


def test_the_sql_check_finds_sql(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""SELECT x FROM docstrings is prose."""\nimport sqlite_utils\n'
                      'def f(db):\n    """INSERT INTO t is prose too."""\n'
                      '    db.execute(f"SELECT a FROM {t} WHERE b = ?", [1])\n'
                      '    return "UPDATE usage SET x = 1"\n')
    assert sorted(f.split(" ", 1)[1] for f in sql_outside_stores(sample)) == [
        ".execute(…)", "SQL 'SELECT a FROM '", "SQL 'UPDATE usage SET x = 1'", "import sqlite_utils"]
