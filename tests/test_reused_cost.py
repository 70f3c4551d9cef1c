"""A run that reuses every document: the `max_cost_usd` expectation bounds what ingesting the
documents costs (reused ones at the cost measured when they were first ingested), while the Spent
line and `--json`'s `ingestion_would_cost_usd` count this run's calls only. Each figure is stated
under its own name, they add up exactly, and the expectation's verdict does not depend on the data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.test_cli_run import QUICKSTART

INGESTION = 0.00751502  # the quickstart's parse + embed calls at live prices (README, Quickstart)
QUERIES = 0.00000026  # its two retrieval queries
SPENT_REUSED = ("Spent $0 · the real services would have charged $0.00000026 ($0 ingestion + $0.00000026 "
                "retrieval queries) · 4 reused document(s) made no calls (their first ingestion: $0.00751502, "
                "counted by max_cost_usd)")
DETAIL_REUSED = ("ingesting the documents would cost $0.00751502: $0 in this run (the Spent line's ingestion "
                 "figure) + $0.00751502 for 4 reused document(s), as measured when they were first ingested "
                 "(--fresh measures them again; the retrieval queries' own calls not counted)")


def _tvdb(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # no COLUMNS: in a pipe nothing is wrapped, so the Spent line is one line
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["TVDB_DATA_DIR"] = str(cwd / ".tvdb")
    done = subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done


def _max_cost(result: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in result["expectations"] if e["description"].startswith("ingesting the documents"))


def _spent(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("Spent "))


def test_a_fully_reused_run_names_this_runs_cost_and_the_reused_share_and_they_add_up(tmp_path: Path) -> None:
    first = json.loads(_tvdb(tmp_path, "run", str(QUICKSTART), "--json").stdout)
    assert (first["ingestion_would_cost_usd"], first["reused_documents"], first["reused_would_cost_usd"],
            first["documents_would_cost_usd"]) == (INGESTION, 0, 0.0, INGESTION)
    assert _max_cost(first) == {"description": "ingesting the documents costs at most $0.01 at live prices",
                                "passed": True, "kind": "",
                                "detail": "ingestion would cost $0.00751502 (the retrieval queries' own calls "
                                          "not counted)"}

    text = _tvdb(tmp_path, "run", str(QUICKSTART), "--no-progress").stdout
    run_id = text.split()[1]  # "Run <id> · scenario quickstart · mode mock"
    assert _spent(text) == SPENT_REUSED
    assert f"ingesting the documents costs at most $0.01 at live prices — {DETAIL_REUSED}" in text
    # the same run's --json, as CI reads it back (resuming a finished run prints its stored result)
    again = json.loads(_tvdb(tmp_path, "resume", run_id, "--json").stdout)
    assert again["run_id"] == run_id and all(d["reused_from"] for d in again["documents"])
    assert (again["ingestion_would_cost_usd"], again["would_cost_usd"]) == (0.0, QUERIES)  # the Spent line's
    assert (again["reused_documents"], again["reused_would_cost_usd"]) == (4, INGESTION)
    assert again["documents_would_cost_usd"] == INGESTION == first["documents_would_cost_usd"]
    assert _max_cost(again)["detail"] == DETAIL_REUSED and _max_cost(again)["passed"] is True


def test_a_limit_below_the_ingestion_cost_fails_on_the_reused_run_too(tmp_path: Path) -> None:
    scenario = yaml.safe_load(QUICKSTART.read_text())
    scenario["documents"] = [str(QUICKSTART.parent / d) for d in scenario["documents"]]
    scenario["expectations"] = {"max_cost_usd": 0.005}  # below what the quickstart's ingestion costs
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(scenario))
    verdicts = []
    for _ in range(2):
        result = json.loads(_tvdb(tmp_path, "run", str(path), "--json").stdout)
        verdicts.append((_max_cost(result)["passed"], result["documents_would_cost_usd"], result["exit_code"]))
    assert [r for r in result["documents"] if not r["reused_from"]] == []  # the second run reused everything
    assert verdicts == [(False, INGESTION, 1), (False, INGESTION, 1)]
    assert _max_cost(result)["detail"] == (
        "ingesting the documents would cost $0.00751502: $0 in this run (the Spent line's ingestion figure) + "
        "$0.00751502 for 4 reused document(s), as measured when they were first ingested (--fresh measures them "
        "again)")
