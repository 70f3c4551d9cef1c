"""`tvdb run` end to end through the CLI: the quickstart, the --json contract, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def tvdb(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), **env}
    return subprocess.run([sys.executable, "-m", "tvdb", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def quickstart_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    cwd = tmp_path_factory.mktemp("qs")
    done = tvdb(["run", str(QUICKSTART), "--json"], cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # stdout holds exactly one JSON object


def test_quickstart_passes_with_the_stable_json_keys(quickstart_json: dict[str, object]) -> None:
    r = quickstart_json
    for key in ("run_id", "scenario", "mode", "passed", "cost_usd", "would_cost_usd", "documents", "expectations"):
        assert key in r
    assert (r["scenario"], r["mode"], r["passed"], r["cost_usd"]) == ("quickstart", "mock", True, 0)
    docs = r["documents"]
    assert isinstance(docs, list) and len(docs) == 4
    for d in docs:
        assert set(d) >= {"path", "status", "error_code", "pages", "chunks", "tokens"}
        assert d["status"] == "complete" and d["error_code"] is None and d["chunks"] >= 1
        assert d["path"].startswith("quickstart/")  # as the scenario names it; absolute_path is the file
        assert Path(d["absolute_path"]).is_absolute() and Path(d["absolute_path"]).exists()
        assert d["absolute_path"].endswith("/scenarios/" + d["path"])
    pdf = next(d for d in docs if d["path"].endswith("field-guide.pdf"))
    assert pdf["pages"] == 3
    exps = r["expectations"]
    assert isinstance(exps, list) and exps and all(set(e) >= {"description", "passed"} for e in exps)
    assert all(e["passed"] for e in exps)


def test_quickstart_would_cost_matches_live_prices(quickstart_json: dict[str, object]) -> None:
    docs = quickstart_json["documents"]
    assert isinstance(docs, list)
    pages = sum(d["pages"] for d in docs)
    tokens = sum(d["tokens"] for d in docs)
    # fast tier: 1 credit per page at $1.25 per 1,000 credits; text-embedding-3-small $0.02 per 1M tokens
    # the two retrieval queries are embedded too, and cost like any other request
    from tvdb.tokens import count_tokens

    queries = sum(count_tokens(["clean barnacles off the sensor window", "download water-level history as CSV"]))
    parse = pages * 0.00125
    expected = parse + (tokens + queries) * 0.02 / 1e6
    assert quickstart_json["would_cost_usd"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0 < float(quickstart_json["would_cost_usd"]) < 0.01  # type: ignore[arg-type]


def test_human_output_shows_table_and_verdict(tmp_path: Path) -> None:
    done = tvdb(["run", str(QUICKSTART), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "field-guide.pdf" in done.stdout and "PASSED" in done.stdout
    assert "Expectations" in done.stdout


def test_rerun_reuses_documents_and_writes_no_duplicate_rows(tmp_path: Path) -> None:
    import sqlite3

    first = tvdb(["run", str(QUICKSTART), "--json"], tmp_path)
    assert first.returncode == 0, first.stderr
    db = tmp_path / ".tvdb" / "tvdb.db"
    with sqlite3.connect(db) as conn:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("chunks", "vectors", "pages")]
    second = tvdb(["run", str(QUICKSTART), "--json"], tmp_path)
    assert second.returncode == 0, second.stderr
    r2 = json.loads(second.stdout)
    assert all(d["status"] == "complete" and d["reused_from"] for d in r2["documents"])
    assert all(e["passed"] for e in r2["expectations"])  # retrieval works over reused vectors
    with sqlite3.connect(db) as conn:
        assert [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("chunks", "vectors", "pages")] == counts
        stages = conn.execute("SELECT DISTINCT stage FROM usage WHERE run_id = ?", [r2["run_id"]]).fetchall()
    assert stages == [("query",)]  # only the retrieval queries; nothing parsed or embedded again


def test_failed_document_fails_the_run_unless_expected(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("# fine\nSome real text here.")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\nnot a pdf\n%%EOF\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\ndocuments: [ok.md, bad.pdf]\n")
    done = tvdb(["run", str(plain), "--json"], tmp_path)
    assert done.returncode == 1
    r = json.loads(done.stdout)
    bad = next(d for d in r["documents"] if d["path"].endswith("bad.pdf"))
    assert (bad["status"], bad["error_code"]) == ("failed", "corrupt")
    ok = next(d for d in r["documents"] if d["path"].endswith("ok.md"))
    assert ok["status"] == "complete"

    stated = tmp_path / "stated.yaml"
    stated.write_text("name: stated\ndocuments: [ok.md, bad.pdf]\nexpectations:\n  documents:\n"
                      "    - document: bad.pdf\n      status: failed\n      error_code: corrupt\n")
    assert tvdb(["run", str(stated), "--json"], tmp_path).returncode == 0


def test_bad_scenario_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndocuments: [a.md]\nchunking:\n  max_tokenz: 5\n")
    done = tvdb(["run", str(bad)], tmp_path)
    assert done.returncode == 2
    assert f"{bad}:4: chunking.max_tokenz: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_real_mode_without_a_key_exits_2_naming_the_variable_before_anything_runs(tmp_path: Path) -> None:
    done = tvdb(["run", str(QUICKSTART), "--service", "parser=mock"], tmp_path, TVDB_MODE="real")
    assert done.returncode == 2
    assert "the embedder runs in real mode (set by TVDB_MODE) and needs an API key: set OPENAI_API_KEY" in done.stderr
    done = tvdb(["run", str(QUICKSTART), "--mode", "real"], tmp_path)
    assert done.returncode == 2  # both services real, both keys missing: one error names both
    assert ("real mode needs 2 API keys that are not set: the parser (set by --mode) needs LLAMA_CLOUD_API_KEY; "
            "the embedder (set by --mode) needs OPENAI_API_KEY.") in done.stderr
    db = tmp_path / ".tvdb" / "tvdb.db"
    if db.exists():  # nothing ran: no run, no job, no usage row
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT (SELECT COUNT(*) FROM runs) + (SELECT COUNT(*) FROM usage)").fetchone() == (0,)
    done = tvdb(["run", str(QUICKSTART), "--service", "parser=reall"], tmp_path)
    assert done.returncode == 2 and "--service 'parser=reall': expected SERVICE=MODE" in done.stderr


def test_hybrid_without_keys_runs_local_and_says_why(tmp_path: Path) -> None:
    done = tvdb(["run", str(QUICKSTART), "--mode", "hybrid", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    rows = {(p["stage"], p["implementation"], p["reason"]): p["calls"] for p in result["provenance"]}
    assert rows[("embed", "mock", "no OPENAI_API_KEY")] == 1
    assert rows[("parse", "mock", "no LLAMA_CLOUD_API_KEY")] == 4
    assert result["fallbacks"] == 5  # 4 parse jobs + 1 embedding request; the 2 queries follow their space


def test_help_is_fast_and_imports_no_heavy_sdk() -> None:
    code = ("import sys, tvdb.cli.app; heavy = [m for m in ('openai', 'numpy', 'pypdf', 'tiktoken', 'docx') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
    help_text = subprocess.run([sys.executable, "-m", "tvdb", "run", "--help"], capture_output=True, text=True,
                               timeout=60)
    assert help_text.returncode == 0 and "Exit codes" in help_text.stdout


def test_chunk_bounds_for_all_documents_skip_the_ones_expected_to_fail(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("# fine\nSome real text here.")
    (tmp_path / "blank.txt").write_text("\n\n\n")
    s = tmp_path / "s.yaml"
    s.write_text("name: s\ndocuments: [ok.md, blank.txt]\nexpectations:\n  documents:\n"
                 "    - {document: '*', status: complete, min_chunks: 1}\n"
                 "    - {document: blank.txt, status: failed, error_code: no_text}\n")
    done = tvdb(["run", str(s), "--json"], tmp_path)
    assert done.returncode == 0, done.stdout
    descriptions = [e["description"] for e in json.loads(done.stdout)["expectations"]]
    assert "blank.txt: failed with no_text" in descriptions
    assert not any("blank.txt: at least" in d for d in descriptions)


def test_estimate_counts_only_real_services_against_budgets(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# title\n" + "tide sensor reading " * 300)
    s = tmp_path / "s.yaml"
    s.write_text("name: s\nmode: real\nservices: {parser: mock, embedder: real}\ndocuments: [a.md]\n"
                 "parse: {tier: agentic_plus}\nbudget: {max_usd: 0.001}\n")
    done = tvdb(["run", str(s), "--estimate", "--json"], tmp_path)
    est = json.loads(done.stdout)
    assert done.returncode == 0, est  # the mock parse ($0.05625 at live prices) is not real spend
    assert est["fits"] is True and est["modes"] == {"parser": "mock", "embedder": "real"} and est["exit_code"] == 0
    assert est["by_stage_usd"]["parse"] == pytest.approx(45 * 1.25 / 1000)
    assert est["real_spend_usd"] == pytest.approx(est["by_stage_usd"]["embed"])
    assert not (tmp_path / ".tvdb" / "tvdb.db").exists()  # nothing written
    s.write_text(s.read_text().replace("max_usd: 0.001", "max_usd: 0.000001"))
    refused = tvdb(["run", str(s), "--estimate", "--json"], tmp_path)
    assert refused.returncode == 3 and json.loads(refused.stdout)["fits"] is False
    assert json.loads(refused.stdout)["exit_code"] == 3  # as every --json document says its exit code


def test_json_mode_prints_one_object_even_on_errors(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndocuments: [a.md]\nparse: {tier: turbo}\n")
    done = tvdb(["run", str(bad), "--json"], tmp_path)
    assert done.returncode == 2
    out = json.loads(done.stdout)
    assert out["passed"] is False and out["exit_code"] == 2
    assert (out["error"]["type"], out["error"]["line"], out["error"]["key"]) == ("ScenarioError", 3, "parse.tier")


def test_sigterm_stops_like_ctrl_c_and_runs_shows_killed_runs(tmp_path: Path) -> None:
    import sqlite3

    stopped = tvdb(["run", str(QUICKSTART), "--json"], tmp_path, TVDB_CRASH_AFTER_STAGE="chunk:TERM")
    assert stopped.returncode == 130
    out = json.loads(stopped.stdout)
    assert out["status"] == "interrupted" and out["resume_command"] == f"tvdb resume {out['run_id']}"
    assert "Traceback" not in stopped.stderr and "never retrieved" not in stopped.stderr
    (tmp_path / "k").mkdir()
    killed = tvdb(["run", str(QUICKSTART), "--json"], tmp_path / "k", TVDB_CRASH_AFTER_STAGE="parse")
    assert killed.returncode == -9
    with sqlite3.connect(tmp_path / "k" / ".tvdb" / "tvdb.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "running"
    listed = json.loads(tvdb(["runs", "--json"], tmp_path / "k").stdout)["runs"]
    assert [r["status"] for r in listed] == ["interrupted"]


def test_unknown_tvdb_variables_are_warned_about(tmp_path: Path) -> None:
    done = tvdb(["runs"], tmp_path, TVDB_CHUNKING_MAX_TOKENZ="5")
    assert done.returncode == 0
    assert "TVDB_CHUNKING_MAX_TOKENZ is not a tvdb setting (did you mean TVDB_CHUNKING_MAX_TOKENS?)" in done.stderr


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\ndocuments: [a.md]\nname: b\n")
    done = tvdb(["run", str(dup)], tmp_path)
    assert done.returncode == 2 and f"{dup}:3: invalid YAML: duplicate key 'name'" in done.stderr


def test_ctrl_c_while_the_result_prints_says_the_run_is_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    import tvdb.cli.render
    from tests.cli_support import in_process_cli

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the run finished, in the middle of its printout

    monkeypatch.setattr(tvdb.cli.render, "render_result", interrupted)
    data = tmp_path / ".tvdb"
    code, _, err = in_process_cli(monkeypatch, capsys, "--data-dir", str(data))("run", str(QUICKSTART))
    with sqlite3.connect(data / "tvdb.db") as conn:
        run_id, status = conn.execute("SELECT run_id, status FROM runs").fetchone()
    assert (code, status) == (130, "finished")
    assert " ".join(err.split()) == (f"Interrupted while printing. The run {run_id} is complete and stored; see it "
                                     f"with: tvdb --data-dir {data} runs show {run_id}")
