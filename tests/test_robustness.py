"""Regressions for what an adversarial tester found: hostile input, odd files, concurrent resumes,
resume under today's budget, broken configuration — each fails cleanly and loses nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.openai_support import KEY, emulator
from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.db import open_db
from tvdb.domain import Stage
from tvdb.errors import ConfigError, DocumentError, RunBusy, ScenarioError
from tvdb.pipeline.jobs import JobStore
from tvdb.pipeline.objects import ObjectStore
from tvdb.pipeline.stages import read_document
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.runner import RunHooks, resume_run, start_run

BOMB = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n" for i in range(9)
)


def _settings(tmp_path: Path, scenario_path: Path, **env: str):  # type: ignore[no-untyped-def]
    loaded = load_scenario(scenario_path)
    environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), **env}
    return loaded, resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                    scenario_doc=loaded.source)


@pytest.mark.parametrize("text", [BOMB + "name: s\ndocuments: [a.md]\n", "name: &a [*a]\ndocuments: [a.md]\n"])
def test_yaml_alias_bombs_and_cycles_are_refused_quickly(tmp_path: Path, text: str) -> None:
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(ScenarioError, match="alias"):
        load_scenario(tmp_path / "s.yaml")
    (tmp_path / "tvdb.yaml").write_text(text.replace("name: s\ndocuments: [a.md]\n", "mode: mock\n"))
    with pytest.raises(ConfigError, match="alias"):
        resolve_settings(cwd=tmp_path, environ={})


def test_odd_files_fail_their_own_job(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(DocumentError, match="is a FIFO") as info:
        read_document(fifo, 1000, 0.001)
    assert info.value.code == "unsupported_type"
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    with pytest.raises(DocumentError) as info:
        read_document(tmp_path / "zero.txt", 1000, 0.001)
    assert info.value.code == "unsupported_type"
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(DocumentError, match="a directory"):
        read_document(tmp_path / "dir.md", 1000, 0.001)


def test_a_document_replaced_by_a_directory_mid_run_fails_alone(tmp_path: Path) -> None:
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text(f"# {name}\nharbour sensors measure tides")
    s = tmp_path / "s.yaml"
    s.write_text("name: s\ndocuments: [a.md, b.md]\n")
    loaded, settings = _settings(tmp_path, s)
    (tmp_path / "b.md").unlink()
    (tmp_path / "b.md").mkdir()
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    assert {Path(d.path).name: (d.status, d.error_code) for d in result.documents} == {
        "a.md": ("complete", None), "b.md": ("failed", "unsupported_type")}


def test_a_document_the_chunker_cannot_cut_fails_alone(tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("plain words")
    (tmp_path / "odd.md").write_text("𒀀" * 3)  # one character, several tokens
    s = tmp_path / "s.yaml"
    s.write_text("name: s\ndocuments: [ok.md, odd.md]\nchunking: {max_tokens: 2, overlap_tokens: 0}\n")
    loaded, settings = _settings(tmp_path, s)
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    outcome = {Path(d.path).name: d.status for d in result.documents}
    assert outcome["ok.md"] == "complete"
    assert outcome["odd.md"] in ("complete", "failed")  # either way, the run finished


def test_a_bug_while_cutting_one_document_on_a_worker_thread_fails_that_document_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documents are cut on two threads and stored in order: an unexpected error in one cut fails
    its job `internal` (nothing of it stored) and every other document goes on."""
    from tvdb.pipeline import stages

    real_cut = stages.cut_chunks

    def cut(ctx, pages):  # type: ignore[no-untyped-def]
        if "poison" in pages[0].text:
            raise RuntimeError("a bug in the chunker")
        return real_cut(ctx, pages)

    monkeypatch.setattr(stages, "cut_chunks", cut)
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.md").write_text(f"document {name} " + ("poison" if name == "b" else "fine") * 40)
    s = tmp_path / "s.yaml"
    s.write_text("name: s\ndocuments: ['*.md']\n")
    loaded, settings = _settings(tmp_path, s)
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    outcome = {Path(d.path).name: (d.status, d.error_code) for d in result.documents}
    assert outcome == {"a.md": ("complete", None), "b.md": ("failed", "internal"),
                       "c.md": ("complete", None), "d.md": ("complete", None)}
    db = open_db(settings.database_path)
    per_job = dict(db.execute("SELECT j.path, COUNT(c.chunk_id) FROM jobs j LEFT JOIN chunks c "
                              "ON c.job_id = j.job_id GROUP BY j.path").fetchall())
    assert {Path(k).name: v for k, v in per_job.items()} == {"a.md": 1, "b.md": 0, "c.md": 1, "d.md": 1}


def test_a_bad_query_vector_fails_its_expectation_not_the_run(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Alpha\nthe alpha document talks about tide sensors")
    s = tmp_path / "s.yaml"
    s.write_text("name: s\ndocuments: [a.md]\nfaults:\n  - {service: openai, kind: bad_vector, vector: nan, nth: 2}\n"
                 "expectations:\n  retrieval:\n    - {query: tide sensors, document: a.md}\n")
    loaded, settings = _settings(tmp_path, s)
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    (retrieval,) = [e for e in result.expectations if e.description.startswith("query")]
    assert not retrieval.passed and "invalid" in retrieval.detail
    assert result.status == "finished" and result.exit_code == 1


def test_a_second_process_cannot_work_on_a_live_run(tmp_path: Path) -> None:
    db = open_db(tmp_path / "t.db")
    store = JobStore(db, FakeClock())
    store.create_run(run_id="r1", scenario="s", scenario_path="/s.yaml", mode="mock", spec={}, documents=[])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        from tvdb.owner import process_started as _started

        store.set_run("r1", pid=sleeper.pid, pid_started=_started(sleeper.pid))
        with pytest.raises(RunBusy, match=f"pid {sleeper.pid}"):
            store.claim_run("r1")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert store.claim_run("r1")["run_id"] == "r1"  # its owner is gone: taken over
    store.set_run("r1", host="elsewhere.example", pid=1)
    with pytest.raises(RunBusy, match="--force"):
        store.claim_run("r1")
    store.claim_run("r1", force=True)


def test_resume_obeys_todays_budget_not_the_one_the_run_started_with(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" ".join(f"alpha{i} tide" for i in range(1000)))
    s = tmp_path / "s.yaml"
    s.write_text("name: s\nmode: real\nservices: {parser: mock, embedder: real}\ndocuments: [a.txt]\n")

    def stop_after_chunk(stage: Stage) -> None:
        if stage is Stage.CHUNK:
            raise KeyboardInterrupt

    with emulator() as server:
        env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.openai_base_url}
        loaded, generous = _settings(tmp_path, s, TVDB_DAILY_BUDGET_USD="1", **env)
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(start_run(loaded, generous, clock=FakeClock(), hooks=RunHooks(after_stage=stop_after_chunk)))
        run_id = open_db(generous.database_path).execute("SELECT run_id FROM runs").fetchone()[0]
        _, strict = _settings(tmp_path, s, TVDB_DAILY_BUDGET_USD="0.000001", **env)
        result = asyncio.run(resume_run(run_id, strict, clock=FakeClock()))
        assert server.count() == 0
    assert result.documents[0].error_code == "budget" and result.exit_code == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TVDB_DAILY_BUDGET_USD": "inf"}, "TVDB_DAILY_BUDGET_USD"),
        ({"TVDB_DAILY_BUDGET_USD": "1e309"}, "TVDB_DAILY_BUDGET_USD"),
        ({"TVDB_RESERVATION_TTL_S": "10"}, "must be longer than the longest request timeout"),
    ],
)
def test_impossible_settings_are_config_errors(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_settings(cwd=tmp_path, environ=env)


def test_run_budget_flag_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^--max-usd: "):
        resolve_settings(cwd=tmp_path, environ={}, flags={"budget": {"max_usd": float("inf")}})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (b"mode: mock\n# caf\xe9\n", "not UTF-8"),
        (b"prices:\n  openai:\n    text-embedding-3-small: null\n", "prices"),
        (b"chunking:\n  max_tokens: true\n", "expected a number, got a boolean"),
    ],
)
def test_bad_config_files_are_config_errors(tmp_path: Path, config: bytes, message: str) -> None:
    from tvdb.ledger.prices import PriceTable

    (tmp_path / "tvdb.yaml").write_bytes(config)
    with pytest.raises(ConfigError, match=message):
        settings = resolve_settings(cwd=tmp_path, environ={})
        PriceTable.load(settings.prices)


def test_unusable_database_locations_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the tvdb database"):
        open_db(tmp_path / "file" / "tvdb.db")
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="cannot open the tvdb database"):
        open_db(tmp_path / "garbage.db")


def test_a_damaged_stored_object_is_repaired_on_the_next_upload(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path, b"k", FakeClock())
    key = store.put(b"original bytes")
    store.path_of(key).write_bytes(b"originaX bytes")  # same size, one byte flipped
    assert store.put(b"original bytes") == key
    assert store.read(store.signed_url(key, 60)) == b"original bytes"


def test_request_expectation_bounds_must_make_sense(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("x")
    (tmp_path / "s.yaml").write_text("name: s\ndocuments: [a.md]\nexpectations:\n  requests:\n"
                                     "    - {service: openai, min: 5, max: 1}\n")
    with pytest.raises(ScenarioError, match="min is larger than max"):
        load_scenario(tmp_path / "s.yaml")


def test_unexpected_errors_are_reported_without_a_traceback(tmp_path: Path) -> None:
    import typer

    from tvdb.cli.app import handle_errors

    boom = typer.Typer()

    @boom.command()
    def explode() -> None:
        raise RuntimeError("kaboom")

    old = sys.argv
    sys.argv = ["tvdb"]
    try:
        assert handle_errors(boom) == 70
    finally:
        sys.argv = old


@pytest.mark.parametrize("key", ["sk-canary-ROBUST-1 x", "sk-canary-ROBUST-1\r\nX-Evil: 1", "sk-canary-ROBUSTé"])
def test_unusable_api_keys_are_refused_without_being_echoed(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as info:
        resolve_settings(cwd=tmp_path, environ={"OPENAI_API_KEY": key})
    assert "canary" not in str(info.value)


def test_a_trailing_newline_on_a_key_is_forgiven(tmp_path: Path) -> None:
    s = resolve_settings(cwd=tmp_path, environ={"OPENAI_API_KEY": "sk-canary-ROBUST-2\n"})
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == "sk-canary-ROBUST-2"


def test_credentials_in_a_base_url_are_refused_without_being_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must not carry credentials") as info:
        resolve_settings(cwd=tmp_path, environ={"OPENAI_BASE_URL": "http://u:sk-canary-URL@127.0.0.1:9/v1"})
    assert "canary" not in str(info.value)


def test_a_rule_across_keys_is_reported_without_a_bogus_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^configuration: reservation_ttl_s"):
        resolve_settings(cwd=tmp_path, environ={"TVDB_EMBEDDING_TIMEOUT_S": "900"})


def test_scenario_paths_that_are_not_small_regular_files_are_scenario_errors(tmp_path: Path) -> None:
    fifo = tmp_path / "s.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="FIFO"):
        load_scenario(fifo)
    with pytest.raises(ScenarioError, match="device"):
        load_scenario(Path("/dev/zero"))
    with pytest.raises(ConfigError, match="device"):
        resolve_settings(cwd=tmp_path, environ={}, config_file=Path("/dev/zero"))


def test_a_reused_pid_does_not_hold_a_run(tmp_path: Path) -> None:
    from tvdb.owner import owner_alive, process_owner

    me = process_owner()
    assert owner_alive(me) is True
    assert owner_alive({**me, "pid_started": "1"}) is False  # same pid, another process


async def test_a_real_call_stopped_midway_counts_as_assumed_spend(tmp_path: Path) -> None:
    """Ctrl-C/SIGTERM while a paid request is in flight: the provider may bill it, so its estimate is
    settled as spent (`assumed`) instead of being released back to the budget."""
    from tvdb.domain import Implementation
    from tvdb.ledger.budget import LedgerBudget
    from tvdb.ledger.guard import CallScope
    from tvdb.ledger.prices import PriceTable
    from tvdb.services.calls import CallSpec, ServiceCaller
    from tvdb.services.factory import budget_settings

    db = open_db(tmp_path / "t.db")
    settings = resolve_settings(cwd=tmp_path, environ={})
    clock = FakeClock()
    guard = LedgerBudget(db, budget_settings(settings), clock)
    caller = ServiceCaller(db=db, prices=PriceTable.load(), clock=clock, budget=guard)
    started = asyncio.Event()

    async def send() -> int:
        started.set()
        await asyncio.sleep(3600)
        return 0

    spec: CallSpec[int] = CallSpec(service="openai", implementation=Implementation.REAL,
                                   model="text-embedding-3-small", unit="tokens", estimate_units=1000,
                                   send=send, actual_units=lambda r: r)
    task = asyncio.create_task(caller.call(CallScope("r", "s", "embed"), spec))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert db.execute("SELECT status, settled_nusd FROM reservations").fetchall() == [("assumed", 20_000)]
    assert db.execute("SELECT status, error_code, assumed, cost_nusd FROM usage").fetchall() == [
        ("error", "interrupted", 1, 20_000)]
