"""The README's promises, kept: .env warnings and value sources, --fresh, resuming a finished run writes
nothing, "no run X" names the database, a budget refusal delivers the 100 % alert, mock mode has no
billing warnings, page counts agree, --estimate refuses what the run refuses, reused costs are counted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import DOCUMENTS  # TVDB_SHARED_DIR, else ../shared
from tests.openai_support import CANARY, emulator
from tests.receivers import Receiver
from tests.test_cli_run import QUICKSTART, tvdb

CORPUS = DOCUMENTS


def _snapshot(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}  # type: ignore[misc]


def test_dotenv_typos_are_warned_and_bad_values_name_their_source(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TVDB_CHUNKING_MAX_TOKENZ=5\n")
    done = tvdb(["runs"], tmp_path)
    assert done.returncode == 0
    assert ("TVDB_CHUNKING_MAX_TOKENZ (in .env) is not a tvdb setting (did you mean TVDB_CHUNKING_MAX_TOKENS?)"
            in done.stderr)
    bad = tvdb(["run", str(QUICKSTART), "--no-progress"], tmp_path, TVDB_CHUNKING_MAX_TOKENS="99999")
    assert bad.returncode == 2 and "TVDB_CHUNKING_MAX_TOKENS=99999 (environment)" in bad.stderr
    (tmp_path / ".env").write_text("TVDB_CHUNKING_OVERLAP_TOKENS=abc\n")
    bad = tvdb(["runs"], tmp_path)
    assert bad.returncode == 2 and "TVDB_CHUNKING_OVERLAP_TOKENS=abc (.env)" in bad.stderr


def test_a_secret_value_is_never_shown_in_the_error_about_it(tmp_path: Path) -> None:
    done = tvdb(["runs"], tmp_path, TVDB_SIGNING_SECRET="")  # empty is ignored: no error
    assert done.returncode == 0
    done = tvdb(["run", str(QUICKSTART), "--json"], tmp_path, OPENAI_API_KEY="sk-canary-UX-1 x", TVDB_MODE="real",
                TVDB_SERVICES_PARSER="mock")
    assert done.returncode == 2 and "sk-canary-UX-1" not in done.stdout + done.stderr


def test_fresh_reparses_and_reembeds_instead_of_reusing(tmp_path: Path) -> None:
    first = json.loads(tvdb(["run", str(QUICKSTART), "--json"], tmp_path).stdout)
    again = json.loads(tvdb(["run", str(QUICKSTART), "--json"], tmp_path).stdout)
    assert all(d["reused_from"] for d in again["documents"]) and again["requests"] == {"query/mock": 2}
    fresh = json.loads(tvdb(["run", str(QUICKSTART), "--json", "--fresh"], tmp_path).stdout)
    assert not any(d["reused_from"] for d in fresh["documents"])
    assert fresh["requests"] == first["requests"] and fresh["would_cost_usd"] == first["would_cost_usd"]
    no_reuse = json.loads(tvdb(["run", str(QUICKSTART), "--json", "--no-reuse"], tmp_path).stdout)
    assert not any(d["reused_from"] for d in no_reuse["documents"])


def test_max_cost_on_a_fully_reused_run_counts_what_ingestion_cost(tmp_path: Path) -> None:
    tvdb(["run", str(QUICKSTART), "--json"], tmp_path)
    again = json.loads(tvdb(["run", str(QUICKSTART), "--json"], tmp_path).stdout)
    cost = next(e for e in again["expectations"] if e["description"].startswith("ingesting the documents costs"))
    assert "would cost $0.00751502" in cost["detail"] and "4 reused document(s)" in cost["detail"]


def test_resuming_a_finished_run_is_a_no_op_that_writes_nothing(tmp_path: Path) -> None:
    done = json.loads(tvdb(["run", str(QUICKSTART), "--json"], tmp_path).stdout)
    db = tmp_path / ".tvdb" / "tvdb.db"
    before = _snapshot(db)
    again = tvdb(["resume", done["run_id"], "--json"], tmp_path)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["run_id"] == done["run_id"] and out["passed"] is True
    assert any("had already finished: nothing was done and nothing written" in n for n in out["notes"])
    assert _snapshot(db) == before  # no stage, no query, no ledger row, not even the run's owner


def test_no_run_names_the_database(tmp_path: Path) -> None:
    done = tvdb(["resume", "20990101-000000-abcdef"], tmp_path)
    assert done.returncode == 2
    assert f"no run '20990101-000000-abcdef' in {tmp_path / '.tvdb' / 'tvdb.db'}" in done.stderr


@pytest.mark.slow
def test_a_budget_refusal_raises_and_delivers_the_100_percent_alert(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" ".join(f"reading{j} value" for j in range(400)))
    (tmp_path / "s.yaml").write_text("name: refused\nmode: real\nservices: {parser: mock, embedder: real}\n"
                                     "documents: [a.txt]\n")
    hook = Receiver([200])
    try:
        with emulator() as server:
            done = tvdb(["run", str(tmp_path / "s.yaml"), "--json", "--no-progress"], tmp_path,
                        OPENAI_BASE_URL=server.openai_base_url, OPENAI_API_KEY=CANARY,
                        TVDB_DAILY_BUDGET_USD="0.000001", TVDB_ALERTS_WEBHOOK_URL=hook.url + "/hook")
    finally:
        hook.close()
    assert done.returncode == 3, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["documents"][0]["error_code"] == "budget"
    assert len(out["alerts"]) == 1 and "calls were refused" in out["alerts"][0]
    assert "$0.000001" in out["alerts"][0]  # the budget as it is, not $0.00
    assert len(hook.requests) == 1
    alert = hook.requests[0][2]["alert"]
    assert alert["severity"] == "critical" and alert["key"].endswith(":100")
    listed = json.loads(tvdb(["alerts", "list", "--all", "--json"], tmp_path).stdout)
    assert [a["delivery_status"] for a in listed["alerts"]] == ["delivered"]


def test_mock_mode_prints_no_billing_warnings_and_page_counts_agree(tmp_path: Path) -> None:
    for name in ("pdflatex-4-pages.pdf", "c02-22.pdf"):
        (tmp_path / name).write_bytes((CORPUS / name).read_bytes())
    (tmp_path / "s.yaml").write_text("name: pages\ndocuments: ['*.pdf']\nexpectations:\n  documents:\n"
                                     "    - {document: c02-22.pdf, status: failed}\n")
    run = tvdb(["run", str(tmp_path / "s.yaml"), "--json"], tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "billed" not in run.stderr and "reserved for" not in run.stderr  # nobody billed anything
    est = json.loads(tvdb(["run", str(tmp_path / "s.yaml"), "--estimate", "--json"], tmp_path).stdout)
    ran = {Path(d["path"]).name: d["pages"] for d in json.loads(run.stdout)["documents"]}
    estimated = {Path(d["path"]).name: d["pages"] for d in est["documents"]}
    with sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db") as conn:
        ledger = {Path(p).name: int(u) for p, u in conn.execute(
            "SELECT j.path, u.units FROM usage u JOIN jobs j ON j.job_id = u.job_id WHERE u.stage = 'parse'")}
    assert ran == estimated == ledger == {"pdflatex-4-pages.pdf": 4, "c02-22.pdf": 0}


def test_estimate_refuses_what_the_run_refuses(tmp_path: Path) -> None:
    # a tokenizer that cannot be loaded (empty offline cache): refused before anything runs, by both
    (tmp_path / "empty-cache").mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty-cache"), "HTTPS_PROXY": "http://127.0.0.1:9"}
    run = tvdb(["run", str(QUICKSTART), "--json"], tmp_path, **env)
    est = tvdb(["run", str(QUICKSTART), "--json", "--estimate"], tmp_path, **env)
    assert run.returncode == est.returncode == 2, (run.stdout, est.stdout)
    message = json.loads(run.stdout)["error"]["message"]
    assert message == json.loads(est.stdout)["error"]["message"]
    # the error names the variable, where it points and the fix
    assert f"(TIKTOKEN_CACHE_DIR is {tmp_path / 'empty-cache'}), e.g. export TIKTOKEN_CACHE_DIR=" in message
    # a forecast needs no key: the run refuses for want of one, the estimate still forecasts
    keyless = tvdb(["run", str(QUICKSTART), "--json", "--estimate"], tmp_path, TVDB_MODE="real",
                   TVDB_SERVICES_PARSER="mock")
    assert keyless.returncode == 0 and json.loads(keyless.stdout)["real_spend_usd"] > 0


def test_expectations_name_documents_with_dotdot_paths_as_written(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "sc").mkdir()
    (tmp_path / "docs" / "a.md").write_text("hello world, a document about tide gauges\n")
    (tmp_path / "docs" / "invalid.pdf").write_bytes((CORPUS / "invalid.pdf").read_bytes())
    (tmp_path / "sc" / "s.yaml").write_text(
        "name: dotdot\ndocuments: [../docs/*.md, ../docs/invalid.pdf]\nexpectations:\n  documents:\n"
        "    - {document: ../docs/invalid.pdf, status: failed}\n    - {document: ../docs/a.md, min_chunks: 1}\n")
    done = tvdb(["run", str(tmp_path / "sc" / "s.yaml"), "--json"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    labels = [e["description"] for e in json.loads(done.stdout)["expectations"]]
    assert any(label.startswith("../docs/invalid.pdf") for label in labels), labels


def _quickstart_then(readme_line: str, then: str, cwd: Path) -> list[str]:
    """Run README line 5 without its venv/pip setup, then `then`, in one bash with `tvdb` stubbed to print
    the TIKTOKEN_CACHE_DIR it sees: what a user pasting the quickstart's commands into a shell gets."""
    import os
    import subprocess

    steps = [s for s in readme_line.split(" && ") if not s.startswith(("python3 -m venv", ". .venv", "pip install"))]
    stub = 'tvdb() { printf "%s\\n" "${TIKTOKEN_CACHE_DIR-unset}"; }'
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    done = subprocess.run(["bash", "-c", f"{stub}\n{' && '.join(steps)}\n{then}"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.splitlines()


def test_the_quickstart_keeps_the_tokenizer_cache_for_the_commands_after_it(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").splitlines()
    assert readme[4].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && ")
    assert readme[4].endswith(" tvdb run scenarios/quickstart.yaml")  # CI: bash -c "$(sed -n 5p README.md)"
    assert "tvdb run scenarios/quickstart.yaml --json > result.json" in "\n".join(readme)
    cache = f"{tmp_path}/../shared/tiktoken_cache"
    assert _quickstart_then(readme[4], "tvdb run scenarios/quickstart.yaml --json", tmp_path) == [cache, cache]
