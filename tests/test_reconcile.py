"""`tvdb cost reconcile FILE`: assumed spend corrected from a provider usage CSV (issue 7, item 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlite_utils

from tests.ledger_rows import add, at
from tvdb.cli.app import app, handle_errors
from tvdb.db import open_db
from tvdb.errors import ConfigError
from tvdb.ledger.reconcile import read_usage_csv, reconcile
from tvdb.ledger.windows import assumed_spend_nusd, day_window, real_spend_nusd

NOW = at("2026-01-12T12:00")
DAY = day_window(at("2026-01-10T12:00"))


def _assumed(db: sqlite_utils.Database, ts: str, tokens: int) -> None:
    """A failed attempt settled at its estimate (tokens × $0.02/1M) as ServiceCaller writes it."""
    row_id = add(db, ts, status="error")
    cost = tokens * 20
    db.execute("UPDATE usage SET assumed = 1, units = ?, cost_nusd = ?, would_cost_nusd = ? WHERE id = ?",
               [tokens, cost, cost, row_id])


def _ledger(tmp_path: Path) -> sqlite_utils.Database:
    db = open_db(tmp_path / "t.db")
    add(db, "2026-01-10T01:00", units=1_000_000)  # answered: $0.02
    _assumed(db, "2026-01-10T02:00", 1_000_000)  # assumed: $0.02
    _assumed(db, "2026-01-10T03:00", 3_000_000)  # assumed: $0.06
    return db


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "usage.csv"
    path.write_text("date,service,model,cost_usd,requests\n" + body)
    return path


def test_assumed_rows_take_the_providers_figure_in_proportion(tmp_path: Path) -> None:
    db = _ledger(tmp_path)
    assert (real_spend_nusd(db, DAY), assumed_spend_nusd(db, DAY)) == (100_000_000, 80_000_000)
    # the provider billed $0.06 that day: $0.02 answered, so $0.04 for the two unread requests
    path = _csv(tmp_path, "2026-01-10,openai,text-embedding-3-small,0.06,3\n")
    result = reconcile(db, path, now=NOW)
    (group,) = result.groups
    assert (group.status, group.known_nusd, group.assumed_before_nusd, group.assumed_rows) == (
        "corrected", 20_000_000, 80_000_000, 2)
    assert (real_spend_nusd(db, DAY), assumed_spend_nusd(db, DAY)) == (60_000_000, 0)
    costs = [r[0] for r in db.execute("SELECT cost_nusd FROM usage ORDER BY id")]
    assert costs == [20_000_000, 10_000_000, 30_000_000]
    kept = db.execute("SELECT reprice_id, old_cost_nusd, new_cost_nusd FROM usage_reprices ORDER BY id").fetchall()
    assert kept == [(result.reconcile_id, 20_000_000, 10_000_000), (result.reconcile_id, 60_000_000, 30_000_000)]
    again = reconcile(db, path, now=NOW)  # idempotent
    assert again.groups[0].status == "matches" and real_spend_nusd(db, DAY) == 60_000_000


def test_a_provider_above_the_ledger_adds_the_difference_and_never_lowers_answers(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    add(db, "2026-01-10T01:00", units=1_000_000)  # $0.02 answered
    add(db, "2026-01-11T01:00", units=1_000_000)
    path = _csv(tmp_path, "2026-01-10,openai,text-embedding-3-small,0.05,\n"
                          "2026-01-11,openai,text-embedding-3-small,0.01,\n")
    dry = reconcile(db, path, now=NOW, dry_run=True)
    assert [g.status for g in dry.groups] == ["added", "ledger_above_provider"]
    assert real_spend_nusd(db) == 40_000_000  # a dry run writes nothing
    reconcile(db, path, now=NOW)
    assert real_spend_nusd(db, DAY) == 50_000_000
    assert real_spend_nusd(db, day_window(at("2026-01-11T12:00"))) == 20_000_000
    assert db.execute("SELECT stage, status, assumed FROM usage WHERE stage = 'reconcile'").fetchall() == [
        ("reconcile", "ok", 0)]


def test_days_are_read_in_the_files_time_zone(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    _assumed(db, "2026-01-10T23:30", 1_000_000)  # 2026-01-11 00:30 in Berlin
    path = _csv(tmp_path, "2026-01-11,openai,text-embedding-3-small,0.01,\n")
    (group,) = reconcile(db, path, now=NOW, timezone="Europe/Berlin").groups
    assert group.status == "corrected" and real_spend_nusd(db) == 10_000_000


@pytest.mark.parametrize(("body", "message"), [
    ("2026-13-01,openai,m,0.1,\n", "usage.csv:2: date"),
    ("2026-01-01,openai,m,abc,\n", "usage.csv:2: cost_usd"),
    ("2026-01-01,openai,m,-1,\n", "usage.csv:2: cost_usd"),
    ("2026-01-01,openai,m,1,\n2026-01-01,openai,m,2,\n", "usage.csv:3: date: 2026-01-01 openai m appears twice"),
])
def test_bad_rows_name_file_line_and_column(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_usage_csv(_csv(tmp_path, body))
    (tmp_path / "h.csv").write_text("day,model,cost\n")
    with pytest.raises(ConfigError, match=r"h.csv:1: missing column\(s\) date, service, cost_usd"):
        read_usage_csv(tmp_path / "h.csv")


def test_cli_reconcile_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    db = open_db(tmp_path / ".tvdb" / "tvdb.db")
    _assumed(db, "2026-01-10T02:00", 1_000_000)
    db.close()
    path = _csv(tmp_path, "2026-01-10,openai,text-embedding-3-small,0.005,1\n")
    monkeypatch.setattr(sys, "argv", ["tvdb", "cost", "reconcile", str(path), "--json", "--now", "2026-01-12"])
    assert handle_errors(app) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["groups"] == [{"day": "2026-01-10", "service": "openai", "model": "text-embedding-3-small",
                              "status": "corrected", "billed_usd": 0.005, "known_usd": 0.0,
                              "assumed_before_usd": 0.02, "assumed_rows": 1, "added_usd": 0.0}]
    monkeypatch.setattr(sys, "argv", ["tvdb", "cost", "reconcile", str(tmp_path / "missing.csv")])
    assert handle_errors(app) == 2
    assert "missing.csv" in capsys.readouterr().err
