"""`tvdb runs list|show|compare` and the SQL views, on a database produced by a known sequence of runs
(tests/history_support.py: R1 mock fast, R2 mock agentic 64-token chunks, R3 real embedder with a
429 retried, R4 = R3 again with every document reused)."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.history_support import PAGES, History, build_history
from tvdb.history.compare import COST_TOLERANCE_PCT, _cost_up, _stage_delta
from tvdb.history.metrics import percentile, stage_metrics
from tvdb.history.store import CallRecord, DocumentRecord

NUSD_PER_TOKEN = 20  # text-embedding-3-small, $0.02 per 1M tokens
NUSD_FAST_PAGE, NUSD_AGENTIC_PAGE = 1_250_000, 12_500_000


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("history"))


@pytest.fixture
def cli(history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("COLUMNS", "200")

    return in_process_cli(monkeypatch, capsys, "--data-dir", str(history.db_path.parent))


def _json(cli: Cli, *args: str) -> object:
    code, out, err = cli(*args)
    assert code == 0, err
    return json.loads(out)


def _tokens(history: History, run: int, stage: str) -> int:
    with sqlite3.connect(history.db_path) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(units), 0) FROM usage WHERE run_id = ? AND stage = ? "
                                "AND status = 'ok'", [history.ids[run], stage]).fetchone()[0])


def _runs(cli: Cli, *args: str) -> list[dict[str, Any]]:
    doc = _json(cli, "runs", *args, "--json")
    assert isinstance(doc, dict) and list(doc) == ["runs"]  # one object, as every --json (never a bare list)
    return list(doc["runs"])


def test_runs_list_json_newest_first_with_documents_cost_and_duration(cli: Cli, history: History) -> None:
    rows = _runs(cli, "list")
    assert [r["run_id"] for r in rows] == list(reversed(history.ids))
    r1, r2, r3, r4 = reversed(rows)
    assert (r1["scenario"], r1["mode"], r1["status"], r1["passed"], r1["documents"]) == ("docs", "mock", "finished",
                                                                                        True, 4)
    assert r1["spent_usd"] == 0
    embed, query = _tokens(history, 0, "embed"), _tokens(history, 0, "query")
    assert r1["would_cost_usd"] == pytest.approx((PAGES * NUSD_FAST_PAGE + (embed + query) * NUSD_PER_TOKEN) / 1e9,
                                                 abs=1e-15)
    assert r2["would_cost_usd"] == pytest.approx(
        (PAGES * NUSD_AGENTIC_PAGE + (_tokens(history, 1, "embed") + query) * NUSD_PER_TOKEN) / 1e9, abs=1e-15)
    # R3: the real embedder spent on its chunks and the query; parsing stayed mock
    assert r3["spent_usd"] == pytest.approx((_tokens(history, 2, "embed") + query) * NUSD_PER_TOKEN / 1e9, abs=1e-15)
    assert (r3["calls"], r3["errors"], r3["retries"]) == (4 + 2 + 1, 1, 1)
    assert (r4["reused"], r4["calls"], r4["spent_usd"]) == (4, 2, pytest.approx(query * NUSD_PER_TOKEN / 1e9))
    assert all(r["duration_s"] > 0 for r in rows)
    assert r1["pages"] == PAGES and r2["chunks"] > r1["chunks"]


def test_runs_alias_filters_and_table(cli: Cli, history: History) -> None:
    assert _runs(cli) == _runs(cli, "list")
    since = _runs(cli, "list", "--since", "2026-01-06")
    assert [r["run_id"] for r in since] == [history.ids[3], history.ids[2]]
    assert _runs(cli, "list", "--scenario", "other") == []
    assert len(_runs(cli, "--limit", "1")) == 1
    code, out, _ = cli("runs")
    assert code == 0
    for run_id in history.ids:
        assert run_id in out  # the full id, unbroken, ready to copy into `tvdb resume`
    assert "docs" in out and "passed" in out and "$0.00001516" in out


def test_runs_plain_has_a_value_in_every_column_for_awk(cli: Cli, history: History) -> None:
    # A run with no failed document used to print an empty "failed" cell: awk's $7 then read the spend.
    code, out, _ = cli("runs", "--format", "plain")
    assert code == 0
    header, *rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert header[:6] == ["run_id", "scenario", "mode", "status", "docs", "failed"]
    assert len(rows) == len(history.ids)
    for row in rows:
        assert row[5] == "–" and row[6].startswith("$")  # failed, then spent
        assert len(row) == 11  # 10 columns; "started (UTC)" is a date and a time


def test_run_id_prefixes_are_accepted_and_ambiguity_is_explained(cli: Cli, history: History) -> None:
    detail = _json(cli, "runs", "show", history.ids[0][:13], "--json")
    assert detail["run"]["run_id"] == history.ids[0]  # type: ignore[index]
    code, _, err = cli("runs", "show", "202601")
    assert code == 2 and "matches several runs" in err and history.ids[0] in err
    code, _, err = cli("runs", "show", "19990101")
    assert code == 2 and "no run '19990101'" in err


def test_runs_show_per_document_stages_and_event_timeline(cli: Cli, history: History) -> None:
    detail = _json(cli, "runs", "show", history.ids[2], "--json")
    assert isinstance(detail, dict)
    stages = {s["stage"]: s for s in detail["stages"]}
    assert list(stages) == ["upload", "parse", "chunk", "embed", "validate", "store", "query"]
    embed = stages["embed"]
    assert (embed["attempts"], embed["errors"], embed["retries"]) == (2, 1, 1)
    assert embed["errors_by_code"] == {"rate_limit_exceeded": 1} and embed["error_rate"] == 0.5
    assert stages["parse"]["attempts"] == 4 and stages["parse"]["documents"] == 4
    assert stages["parse"]["credits"] == PAGES  # fast: 1 credit per page
    assert stages["parse"]["p95_ms"] > 0
    docs = detail["documents"]
    assert [Path(d["path"]).name for d in docs] == ["field-guide.pdf", "getting-started.md", "release-notes.txt",
                                                      "support.html"]
    pdf = docs[0]
    per_stage = {s["stage"]: s for s in pdf["stages"]}
    assert per_stage["embed"]["attempts"] == 2  # the batched request (and its retry) served every document
    assert per_stage["parse"]["would_cost_usd"] == pytest.approx(3 * NUSD_FAST_PAGE / 1e9)
    states = [e["to_state"] for e in pdf["events"]]
    assert states == ["pending", "uploaded", "parsing", "parsed", "chunked", "embedding", "embedded", "stored",
                      "complete"]
    assert [e["ts"] for e in pdf["events"]] == sorted(e["ts"] for e in pdf["events"])
    code, out, _ = cli("runs", "show", history.ids[2])
    assert code == 0 and pdf["correlation_id"] in out and "rate_limit_exceeded 1" in out
    assert "parsing → parsed" in out
    assert "getting-started.md · complete · 1 page, " in out and "1 pages" not in out  # singular for one



def test_runs_show_counts_in_english_and_takes_no_progress_as_every_command_does(cli: Cli, history: History) -> None:
    code, out, err = cli("runs", "show", history.ids[0], "--no-progress")  # R1: one chunk per document
    assert code == 0, err
    assert out.count("  embedded → stored  1 vector stored\n") == 4 and "1 vectors" not in out
    assert " · 4 documents (4 complete, 0 failed, 0 reused) · " in out and " · 6 calls, 0 errors, 0 retries\n" in out
    assert out.endswith("\n1 call served no single document (retrieval queries).\n")
    code, out, err = cli("runs", "show", history.ids[1])  # R2: 64-token chunks, several per document
    assert code == 0 and re.search(r"  embedded → stored  [2-9] vectors stored\n", out), err
    for args in (("runs", "--no-progress"), ("runs", "list", "--no-progress"), ("cost", "report", "--no-progress"),
                 ("runs", "compare", history.ids[2], history.ids[3], "--progress")):
        assert cli(*args)[0] == 0, args


def test_counts_read_as_english() -> None:
    from tvdb.words import counted

    assert [counted(0, "vector"), counted(1, "vector"), counted(2, "vector")] == ["0 vectors", "1 vector", "2 vectors"]
    assert [counted(1, "retry", "retries"), counted(3, "retry", "retries")] == ["1 retry", "3 retries"]

def test_compare_same_space_per_chunk_cosine_is_one_for_reused_documents(cli: Cli, history: History) -> None:
    c = _json(cli, "runs", "compare", history.ids[2], history.ids[3], "--json")
    assert isinstance(c, dict)
    assert len(c["documents"]) == 4
    for d in c["documents"]:
        assert d["space_a"] == d["space_b"] == "real/text-embedding-3-small/1536"
        assert d["cosine_mean"] == pytest.approx(1.0, abs=1e-6) and d["note"] == "per chunk"
    assert c["retrieval_recall"]["a"] == c["retrieval_recall"]["b"] == 1.0
    assert not any("cost" in r for r in c["regressions"])  # R4 only paid for the query


def test_compare_mock_with_real_refuses_cosines_across_spaces(cli: Cli, history: History) -> None:
    c = _json(cli, "runs", "compare", history.ids[0], history.ids[2], "--json")
    assert isinstance(c, dict)
    for d in c["documents"]:
        assert d["cosine_mean"] is None and "different spaces" in d["note"]
        assert (d["space_a"], d["space_b"]) == ("mock/text-embedding-3-small/1536", "real/text-embedding-3-small/1536")
    stages = {s["stage"]: s for s in c["stages"]}
    assert stages["embed"]["a"]["error_rate"] == 0 and stages["embed"]["b"]["error_rate"] == 0.5
    assert stages["embed"]["b"]["retry_rate"] == 0.5


def test_compare_flags_error_and_retry_rates_that_went_up(cli: Cli, history: History) -> None:
    # R3's real embedder got a 429 and retried it: 1 of its 2 embed attempts failed, 1 was a retry
    c = _json(cli, "runs", "compare", history.ids[0], history.ids[2], "--json")
    assert isinstance(c, dict)
    assert "embed: error rate 0.0% → 50.0% (1 of 2 attempts)" in c["regressions"]
    assert "embed: retry rate 0.0% → 50.0% (1 of 2 attempts)" in c["regressions"]
    embed = next(s for s in c["stages"] if s["stage"] == "embed")
    assert embed["error_regression"] and embed["retry_regression"] and len(embed["regressions"]) >= 2
    code, out, _ = cli("runs", "compare", history.ids[0], history.ids[2], "--fail-on-regression")
    assert code == 1 and "▲ embed: error rate 0.0% → 50.0%" in out and "▲ embed: retry rate" in out
    assert "regressed" in out  # the mark column has a header
    back = _json(cli, "runs", "compare", history.ids[2], history.ids[0], "--json")
    assert isinstance(back, dict)
    assert not [r for r in back["regressions"] if "rate" in r]  # fewer errors is no regression


def test_changes_never_read_minus_zero() -> None:
    from tvdb.cli.render_history import change_pct

    assert [change_pct(100, 99.6), change_pct(100, 100), change_pct(0, 5), change_pct(100, 125),
            change_pct(100, 100.001), change_pct(None, 3)] == ["-0.4%", "same", "new", "+25%", "+0.001%", "–"]


def test_compare_marks_cost_regressions_and_can_fail_ci(cli: Cli, history: History) -> None:
    c = _json(cli, "runs", "compare", history.ids[0], history.ids[1], "--json")
    assert isinstance(c, dict)
    assert any(r.startswith("cost at live prices up: $0.007514") for r in c["regressions"])
    assert c["cost_tolerance_pct"] == COST_TOLERANCE_PCT == 1.0  # the CLI's default is the library's
    by_name = {Path(d["path"]).name: d for d in c["documents"]}
    pdf = by_name["field-guide.pdf"]
    assert (pdf["chunks_a"], pdf["chunks_b"]) == (1, 5) and pdf["note"].startswith("mean vectors")
    assert 0.5 < pdf["cosine_mean"] <= 1.0  # the same text cut differently, in the same (mock) space
    code, out, _ = cli("runs", "compare", history.ids[0][:13], history.ids[1][:13], "--fail-on-regression")
    assert code == 1 and "▲ cost at live prices up" in out
    code, _, _ = cli("runs", "compare", history.ids[1], history.ids[0], "--fail-on-regression",
                     "--threshold", "100000")
    assert code == 0  # cheaper, and no stage slower by 1000x
    lenient = _json(cli, "runs", "compare", history.ids[0], history.ids[1], "--json", "--cost-tolerance", "100000")
    assert isinstance(lenient, dict) and lenient["cost_tolerance_pct"] == 100000 and lenient["exit_code"] == 0
    code, out, _ = cli("runs", "compare", history.ids[0], history.ids[1], "--fail-on-regression", "--json")
    assert code == 1 and json.loads(out)["exit_code"] == 1
    assert not [r for r in lenient["regressions"] if r.startswith("cost")]


@pytest.mark.parametrize("option", ["--cost-tolerance", "--threshold"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "1e999", "-1", "2000000", "lots"])
def test_a_percentage_outside_its_bounds_says_what_it_must_be(cli: Cli, history: History, option: str,
                                                               value: str) -> None:
    """nan used to read "should be less than or equal to 1000000"; every bad value now gets one sentence."""
    said = f"Invalid value for '{option}': must be a number between 0 and 1,000,000 (percent), got '{value}'"
    code, out, err = cli("runs", "compare", history.ids[0], history.ids[1], option, value)
    assert code == 2 and out == "" and err.splitlines()[-1] == f"Error: {said}"
    code, out, err = cli("runs", "compare", history.ids[0], history.ids[1], option, value, "--json")
    assert code == 2 and json.loads(out) == {"error": {"type": "BadParameter", "message": said,
                                                       "command": "tvdb runs compare", "param": option},
                                             "exit_code": 2}


def test_a_percentage_at_its_bounds_is_accepted(cli: Cli, history: History) -> None:
    for value, expected in (("0", 0.0), ("1e6", 1_000_000.0), ("12.5", 12.5)):
        c = _json(cli, "runs", "compare", history.ids[0], history.ids[1], "--json", "--cost-tolerance", value,
                  "--threshold", value)
        assert isinstance(c, dict) and c["cost_tolerance_pct"] == expected and c["threshold_pct"] == expected


def _doc(job: str, **stage_ms: float) -> DocumentRecord:
    return DocumentRecord(job, 0, f"/d/{job}", "c", "complete", None, None, job, 1, 1, 1, None, stage_ms)


def test_percentiles_and_p95_threshold() -> None:
    assert percentile([10, 20, 30, 40], 50) == 25 and percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert percentile([], 50) is None and percentile([7], 95) == 7
    a = stage_metrics([_doc("a", parse=100), _doc("b", parse=200)], [])[0]
    b = stage_metrics([_doc("a", parse=100), _doc("b", parse=260)], [])[0]
    assert (a.p50_ms, a.p95_ms) == (150, 195)
    assert b.p95_ms == pytest.approx(252)
    flagged = _stage_delta("parse", a, b, 20)
    assert flagged.p95_change_pct == pytest.approx(29.23, abs=0.01)
    assert flagged.regression == "parse: p95 latency 195.0 ms → 252.0 ms (+29% > 20%)"
    assert _stage_delta("parse", a, b, 30).regression is None
    tiny_a = stage_metrics([_doc("a", chunk=0.2)], [])[0]
    tiny_b = stage_metrics([_doc("a", chunk=0.9)], [])[0]
    assert _stage_delta("chunk", tiny_a, tiny_b, 20).regression is None  # +350 %, but under 5 ms
    jitter_a = stage_metrics([_doc("a", upload=10.4)], [])[0]
    jitter_b = stage_metrics([_doc("a", upload=13.0)], [])[0]
    assert _stage_delta("upload", jitter_a, jitter_b, 20).regression is None  # +25 %, 2.6 ms: jitter
    slow_b = stage_metrics([_doc("a", upload=16.0)], [])[0]
    assert _stage_delta("upload", jitter_a, slow_b, 20).regression == (
        "upload: p95 latency 10.4 ms → 16.0 ms (+54% > 20%)")


def _query_call(latency_ms: float) -> CallRecord:
    return CallRecord(1, "2026-12-01T00:00:00Z", "r", (), None, "s", "query", "openai", "mock", "mock",
                      "text-embedding-3-small", 5, "tokens", None, 0, 100, "ok", None, None, latency_ms, None, 1)


def test_a_stage_without_documents_takes_its_latency_from_its_calls() -> None:
    query = stage_metrics([_doc("a", parse=100)], [_query_call(2.0), _query_call(4.0), _query_call(30.0)])[-1]
    assert (query.stage, query.documents, query.attempts) == ("query", 0, 3)
    assert (query.p50_ms, query.p95_ms, query.max_ms) == (4.0, pytest.approx(27.4), 30.0)
    parse = stage_metrics([_doc("a", parse=100)], [])[0]
    assert (parse.p50_ms, parse.max_ms) == (100, 100)  # a document's stage time, not a call's


def _parse_call(ok: bool) -> CallRecord:
    return CallRecord(1, "2026-12-01T00:00:00Z", "r", (), None, "s", "parse", "llamaparse", "mock", "mock", "fast",
                      1, "pages", 1, 0, 1_250_000, "ok" if ok else "error", None if ok else "corrupt", None, 2.0,
                      None, 1)


def test_reused_documents_count_in_the_rates_denominator() -> None:
    # A parsed 5 documents, invalid.pdf failed; B reused the 4 good ones and parsed only invalid.pdf again
    docs = [_doc(j, parse=10) for j in "abcde"]
    a = stage_metrics(docs, [_parse_call(True)] * 4 + [_parse_call(False)])[0]
    reused = [dataclasses.replace(_doc(j), reused_from=f"old-{j}") for j in "abcd"]
    b = stage_metrics([*reused, _doc("e", parse=10)], [_parse_call(False)])[0]
    assert (a.error_rate, b.attempts, b.reused, b.error_rate, b.retry_rate) == (0.2, 1, 4, 0.2, 0.0)
    assert _stage_delta("parse", a, b, 20).regressions == ()
    worse = stage_metrics([*reused[:3], _doc("d", parse=10), _doc("e", parse=10)], [_parse_call(False)] * 2)[0]
    assert _stage_delta("parse", a, worse, 20).error_regression == (
        "parse: error rate 20.0% → 40.0% (2 of 2 attempts + 3 reused documents)")
    assert worse.as_json()["reused"] == 3
    # a run that reused every document still has parse and embed rates: 0 of 5, not a blank
    everything = [dataclasses.replace(_doc(j), reused_from=f"old-{j}") for j in "abcde"]
    stages = {m.stage: m for m in stage_metrics(everything, [])}
    assert [(s, stages[s].attempts, stages[s].reused, stages[s].error_rate, stages[s].retry_rate)
            for s in ("parse", "embed")] == [("parse", 0, 5, 0.0, 0.0), ("embed", 0, 5, 0.0, 0.0)]


def test_a_cost_change_within_the_tolerance_is_no_regression() -> None:
    assert _cost_up(0.00751502, 0.00751514, 1.0) is None  # +0.0016 %: a few tokens
    assert _cost_up(0.00751502, 0.00751514, 0.0) == (
        "cost at live prices up: $0.00751502 → $0.00751514 (+0.0016% > 0%)")
    assert _cost_up(0.0075, 0.0080, 1.0) == "cost at live prices up: $0.0075 → $0.008 (+6.67% > 1%)"
    assert _cost_up(0.0075, 0.007575, 1.0) is None  # exactly +1 %
    assert _cost_up(0.0, 0.0001, 1.0) == "cost at live prices up: $0 → $0.0001"
    assert _cost_up(None, 0.0001, 1.0) is None and _cost_up(0.0001, 0.0001, 0.0) is None


def test_views_daily_spend_and_run_summary(history: History) -> None:
    with sqlite3.connect(history.db_path) as conn:
        conn.row_factory = sqlite3.Row
        days = {(r["day"], r["service"], r["implementation"]): dict(r)
                for r in conn.execute("SELECT * FROM daily_spend")}
        summary = [dict(r) for r in conn.execute("SELECT * FROM run_summary ORDER BY started_at")]
        stages = conn.execute("SELECT COUNT(*), COUNT(DISTINCT stage) FROM job_stages WHERE run_id = ?",
                              [history.ids[0]]).fetchone()
    parse_05 = days[("2026-01-05", "llamaparse", "mock")]
    assert (parse_05["calls"], parse_05["spent_usd"]) == (8, 0)
    assert parse_05["would_cost_usd"] == pytest.approx(PAGES * (NUSD_FAST_PAGE + NUSD_AGENTIC_PAGE) / 1e9)
    real_06 = days[("2026-01-06", "openai", "real")]
    assert (real_06["calls"], real_06["errors"]) == (5, 2)  # R3: 429 + embed + query; R4: 429 + query
    assert real_06["spent_usd"] == pytest.approx(summary[2]["spent_usd"] + summary[3]["spent_usd"])
    assert [s["run_id"] for s in summary] == list(history.ids)
    assert tuple(stages) == (4 * 6, 6)  # every document timed in all six stages


def test_a_call_of_unknown_price_makes_view_amounts_null(tmp_path: Path) -> None:
    from tests.ledger_rows import add
    from tvdb.db import open_db

    db = open_db(tmp_path / "t.db")
    add(db, "2026-01-05T10:00", units=1_000_000)
    add(db, "2026-01-05T11:00", model="text-embedding-9-mystery")
    (row,) = db.query("SELECT * FROM daily_spend")
    assert (row["spent_usd"], row["spent_known_usd"], row["unknown_price_calls"]) == (None, 0.02, 1)


def test_cost_advise_figures_on_the_known_run_sequence(cli: Cli, history: History) -> None:
    doc = _json(cli, "cost", "advise", "--json")
    assert isinstance(doc, dict)
    items = {a["kind"]: a for a in doc["advice"]}
    # R2 parsed all 6 pages at agentic (10 credits) though fast (1 credit) parsed them fine in R1:
    # 6 × ($0.0125 − $0.00125); mock calls, so no real money
    assert (items["cheaper_tier"]["occurrences"], items["cheaper_tier"]["saved_would_cost_nusd"]) == (4, 67_500_000)
    assert items["cheaper_tier"]["saved_nusd"] == 0 and "agentic → fast" in items["cheaper_tier"]["detail"]
    # R3 parsed at fast again what R1 had parsed at fast: 6 pages × $0.00125
    assert (items["repeated_parse"]["occurrences"], items["repeated_parse"]["saved_would_cost_nusd"]) == (4, 7_500_000)
    # R3's real embedding request at the Batch API's $0.01 per 1M instead of $0.02
    tokens = _tokens(history, 2, "embed")
    assert items["batch_api"]["saved_nusd"] == tokens * NUSD_PER_TOKEN - tokens * 10
    # R4 repeated R3 (same scenario file): its real spend (the query) is what a cassette saves
    assert items["cassettes"]["saved_nusd"] == _tokens(history, 3, "query") * NUSD_PER_TOKEN
    assert items["request_minimum"]["occurrences"] == 0  # every run sent the fewest requests
    assert items["request_minimum"]["saved_usd"] == 0
    assert [a["kind"] for a in doc["advice"]][:2] == ["cheaper_tier", "repeated_parse"]  # biggest first
    code, out, _ = cli("cost", "advise")
    assert code == 0 and "$0.0675" in out and "Batch API" in out


def test_advice_counts_real_money_and_extra_requests() -> None:
    from tvdb.history.advise import _cheaper_tier, _repeated_parses, _request_minimum
    from tvdb.ledger.prices import PriceTable

    def parse(ts: str, tier: str, impl: str, cost: int, state: str = "complete") -> dict[str, object]:
        return {"ts": ts, "tier": tier, "pages": 2, "implementation": impl, "cost_nusd": cost,
                "would_cost_nusd": cost or 2 * NUSD_FAST_PAGE, "sha256": "s", "state": state}

    rows = [parse("2026-01-01T00:00", "fast", "real", 2 * NUSD_FAST_PAGE),
            parse("2026-01-02T00:00", "agentic", "real", 25_000_000),
            parse("2026-01-03T00:00", "agentic", "real", 25_000_000)]
    tier = _cheaper_tier(rows, PriceTable.load())
    assert (tier.occurrences, tier.saved_nusd) == (2, 2 * 2 * (NUSD_AGENTIC_PAGE - NUSD_FAST_PAGE))
    repeat = _repeated_parses(rows)
    assert (repeat.occurrences, repeat.saved_nusd) == (1, 25_000_000)
    failed_fast = [parse("2026-01-01T00:00", "fast", "real", 2 * NUSD_FAST_PAGE, state="failed"), rows[1]]
    assert _cheaper_tier(failed_fast, PriceTable.load()).occurrences == 0  # fast did not parse it fine
    # a mock parse at fast proves nothing about the real service's fast tier, nor answers a real parse
    mock_fast = [parse("2026-01-01T00:00", "fast", "mock", 0), *rows[1:]]
    assert _cheaper_tier(mock_fast, PriceTable.load()).saved_nusd == 0
    assert (_repeated_parses(mock_fast).occurrences, _repeated_parses(mock_fast).saved_nusd) == (1, 25_000_000)
    extra = _request_minimum([{"requests": 5, "tokens": 1000, "inputs": 4100}, {"requests": 1, "tokens": 10,
                                                                               "inputs": 1}])
    assert (extra.occurrences, extra.saved_nusd) == (2, 0)  # 5 sent, ⌈4100/2048⌉ = 3 needed


def test_a_batched_calls_cost_is_split_among_its_documents_by_tokens() -> None:
    from dataclasses import replace

    from tvdb.history.detail import share_of

    call = replace(_query_call(5.0), stage="embed", job_ids=("a", "b", "c"), units=400, cost_nusd=1001,
                   would_cost_nusd=1000)
    tokens = {"a": 100, "b": 100, "c": 200}
    parts = [share_of(call, j, tokens) for j in ("a", "b", "c")]
    assert [p.would_cost_nusd for p in parts] == [250, 250, 500]
    assert [p.cost_nusd for p in parts] == [250, 250, 501]  # whole nano-dollars that add up to the call
    assert [p.units for p in parts] == [100, 100, 200]
    assert share_of(replace(call, cost_nusd=None), "a", tokens).cost_nusd is None  # unknown stays unknown
    assert share_of(call, "b", {}).would_cost_nusd == 333  # no token counts: evenly
    single = replace(call, job_ids=("a",))
    assert share_of(single, "a", tokens) is single
