"""`tvdb logs --correlation-id ID | --run RUN`: one job's or one run's events and calls in time order;
`--log-format json` lines carry run_id and correlation_id; no secret ever printed (canary keys)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.history_support import History, build_history
from tests.openai_support import CANARY, KEY
from tvdb.clock import FakeClock
from tvdb.db import open_db
from tvdb.domain import Implementation
from tvdb.ledger.usage import Pricing, UsageRow, insert_usage
from tvdb.pipeline.jobs import JobStore


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("logs"))


@pytest.fixture
def cli(history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return in_process_cli(monkeypatch, capsys, "--data-dir", str(history.db_path.parent))


def _lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_one_job_across_stages_in_time_order(cli: Cli, history: History) -> None:
    doc = history.runs[2].documents[0]  # R3's field-guide.pdf: parse, a 429, its retry, embedded
    code, out, _ = cli("logs", "--correlation-id", doc.correlation_id[:10], "--log-format", "json")
    assert code == 0
    lines = _lines(out)
    assert {(e["run_id"], e["correlation_id"]) for e in lines} == {(history.ids[2], doc.correlation_id)}
    assert [e["ts"] for e in lines] == sorted(str(e["ts"]) for e in lines)
    calls = [e for e in lines if e["kind"] == "call"]
    assert [(c["stage"], c["status"], c["attempt"]) for c in calls] == [("parse", "ok", 1), ("embed", "error", 1),
                                                                       ("embed", "ok", 2)]
    assert calls[1]["error_code"] == "rate_limit_exceeded" and calls[1]["http_status"] == 429
    states = [e["to_state"] for e in lines if e["kind"] == "event"]
    assert states[0] == "pending" and states[-1] == "complete" and len(states) == 9
    code, text, _ = cli("logs", "--correlation-id", doc.correlation_id)
    assert code == 0 and "embedding → embedded" in text and "attempt 2: ok" in text
    # a call that cost nothing reads $0, as the tables print it (it printed "$0.")
    (refused,) = [line for line in text.splitlines() if "attempt 1: error rate_limit_exceeded (HTTP 429)" in line]
    assert refused.rstrip().endswith("would cost $0") and "would cost $0.\n" not in text + "\n"


def test_a_whole_run_and_usage_errors(cli: Cli, history: History) -> None:
    code, out, _ = cli("logs", "--run", history.ids[3][:17], "--log-format", "json")
    lines = _lines(out)
    assert code == 0 and {e["run_id"] for e in lines} == {history.ids[3]}
    queries = [e for e in lines if e["kind"] == "call"]
    assert [q["stage"] for q in queries] == ["query", "query"] and queries[0]["correlation_id"] is None
    assert len({e["correlation_id"] for e in lines if e["kind"] == "event"}) == 4
    assert cli("logs")[0] == 2 and cli("logs", "--run", "x", "--correlation-id", "y")[0] == 2
    code, _, err = cli("logs", "--correlation-id", "ffffffffffff")
    assert code == 2 and "no job has correlation ID" in err


def test_no_secret_in_logs_canary(cli: Cli, history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stored text that carries a key (an old message, a provenance with a keyed URL) must still not print
    db = open_db(history.db_path)
    job = JobStore(db, FakeClock()).jobs(history.ids[0])[0]
    JobStore(db, FakeClock()).note(job, f"upstream said: Incorrect API key provided: {CANARY}")
    insert_usage(db, UsageRow(
        ts=FakeClock().now(), run_id=history.ids[0], stage="embed", service="openai",
        implementation=Implementation.REAL, model="text-embedding-3-small", units=0, unit="tokens",
        pricing=Pricing(0, 0, None), status="error", job_ids=(job.job_id,), error_code="invalid_api_key",
        provenance=f"real: OpenAI API at https://proxy.example.com/v1?api-key={CANARY}",
    ))
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    for args in (["--run", history.ids[0]], ["--correlation-id", job.correlation_id]):
        for fmt in ("text", "json"):
            code, out, err = cli("logs", *args, "--log-format", fmt)
            assert code == 0
            assert CANARY not in out + err and CANARY[3:] not in out + err
            assert "Incorrect API key provided" in out  # the message is kept, the key is masked
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the key the real runs of R3/R4 were made with
    code, out, err = cli("logs", "--run", history.ids[2], "--log-format", "json")
    assert code == 0 and KEY not in out + err


def test_process_logs_as_json_lines_carry_run_and_correlation_ids(tmp_path: Path) -> None:
    import os
    import subprocess

    (tmp_path / "a.md").write_text("# Tides\nharbour sensors measure the tide every ten minutes")
    (tmp_path / "s.yaml").write_text("name: lf\ndocuments: [a.md]\nfaults:\n"
                                     "  - {service: llamaparse, kind: status, status: 503, nth: 1}\n")
    env = {**os.environ, "TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "TVDB_RETRY_INITIAL_BACKOFF_S": "0.01",
           "OPENAI_API_KEY": CANARY}
    done = subprocess.run([sys.executable, "-m", "tvdb", "--log-format", "json", "run", "s.yaml", "--json",
                           "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    retry = next(e for e in lines if e["logger"] == "tvdb.services.retry")
    assert retry["level"] == "warning" and "llamaparse attempt 1 failed" in retry["message"]
    assert (retry["run_id"], retry["correlation_id"]) == (result["run_id"], result["documents"][0]["correlation_id"])
    assert CANARY not in done.stderr + done.stdout


def test_json_flag_prints_one_object_with_the_json_lines_entries(cli: Cli, history: History) -> None:
    # --json is the one-object contract of every command; --log-format json streams the same entries
    code, out, _ = cli("logs", "--run", history.ids[3], "--json")
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["entries"]
    assert doc["entries"] == _lines(cli("logs", "--run", history.ids[3], "--log-format", "json")[1])
    assert {e["run_id"] for e in doc["entries"]} == {history.ids[3]}


def test_a_run_id_given_positionally_is_the_same_as_run(cli: Cli, history: History) -> None:
    # `tvdb logs 20261203-061336` used to print Click's "Got unexpected extra argument(s)"
    run = history.ids[3]
    code, out, err = cli("logs", run[:17], "--log-format", "json")
    assert (code, err) == (0, "")
    assert out == cli("logs", "--run", run[:17], "--log-format", "json")[1]
    assert {e["run_id"] for e in _lines(out)} == {run}
    code, _, err = cli("logs", run, "--run", history.ids[2])
    assert code == 2 and f"give the run once: {run} or --run {history.ids[2]}" in " ".join(err.split())
    code, _, err = cli("logs")
    assert code == 2 and "give a run (tvdb logs RUN, or --run RUN) or --correlation-id ID (one of them)" in " ".join(
        err.split())


def test_logs_and_runs_show_word_each_event_the_same(cli: Cli, history: History) -> None:
    doc = history.runs[2].documents[0]
    _, logged, _ = cli("logs", "--correlation-id", doc.correlation_id, "--log-format", "json")
    moves = [str(e["message"]).split(":")[0] for e in _lines(logged) if e["kind"] == "event"]
    assert moves[:2] == ["created → pending", "pending → uploaded"] and moves[-1] == "stored → complete"
    code, shown, _ = cli("runs", "show", history.ids[2])
    assert code == 0 and "∅" not in shown
    section = shown.split(f"correlation {doc.correlation_id}", 1)[1].split("\n\n", 1)[0]
    assert [m for m in moves if m in section] == moves  # every event of the job, worded as `tvdb logs` does


def test_each_job_line_names_its_document_as_the_run_table_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for folder, text in (("a", "Tide tables for the harbour."), ("b", "Barnacles on the sensor window.")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "notes.txt").write_text(text)
    (tmp_path / "solo.md").write_text("# Solo\n\nOne page of notes.")
    (tmp_path / "s.yaml").write_text("name: s\nmode: mock\ndocuments: [solo.md]\n")
    (tmp_path / "twins.yaml").write_text("name: twins\nmode: mock\ndocuments: [a/notes.txt, b/notes.txt]\n")
    run = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    _, out, _ = run("run", str(tmp_path / "s.yaml"), "--json")
    run_id = json.loads(out)["run_id"]
    code, text, _ = run("logs", run_id)
    assert code == 0
    (parse,) = [line for line in text.splitlines() if "  parse  " in line]
    assert "  solo.md  parse   llamaparse mock fast attempt 1: ok in " in parse
    assert parse.endswith(", 1 page, would cost $0.00125")  # was "1 pages"
    (embed,) = [line for line in text.splitlines() if "  embed  " in line]
    assert "  solo.md  embed   openai mock text-embedding-3-small attempt 1: ok in " in embed
    entries = _lines(run("logs", run_id, "--log-format", "json")[1])
    assert {e["document"] for e in entries} == {"solo.md"}
    # names that repeat in a run are told apart by their folders, as the run's table does
    _, out, _ = run("run", str(tmp_path / "twins.yaml"), "--json")
    entries = _lines(run("logs", json.loads(out)["run_id"], "--log-format", "json")[1])
    assert {e["document"] for e in entries if e["kind"] == "event"} == {"a/notes.txt", "b/notes.txt"}
    assert [e["document"] for e in entries if e["stage"] == "embed"] == [None]  # one request for both jobs


def test_an_escaped_document_name_keeps_the_columns_in_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "esc\x1b[31mred.txt").write_text("Tide tables for the harbour.")
    (tmp_path / "plain.txt").write_text("Barnacles on the sensor window.")
    (tmp_path / "s.yaml").write_text('name: s\nmode: mock\ndocuments: ["esc\\e[31mred.txt", plain.txt]\n')
    run = in_process_cli(monkeypatch, capsys, "--data-dir", str(tmp_path / "data"))
    code, out, _ = run("run", str(tmp_path / "s.yaml"), "--json")
    assert code == 0, out
    code, text, _ = run("logs", json.loads(out)["run_id"])
    assert code == 0 and "\x1b" not in text
    parse = [line for line in text.splitlines() if " parse " in line and "llamaparse mock" in line]
    assert len(parse) == 2
    # the stage column starts at the same place on both lines: the escaped name was measured as printed
    assert {line.index(" parse ") for line in parse} == {parse[0].index(" parse ")}
    assert any("esc\\x1b[31mred.txt  parse" in line for line in parse)
