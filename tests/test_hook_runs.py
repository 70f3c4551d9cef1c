"""Running a `pipeline:` scenario (with a stand-in session): each document is one job whose outcome is
what the user's function did; exceptions fail their own document with type, message and where, the
traceback is kept redacted; a TvdbError in the chain keeps its code; `search:` judges retrieval."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hook_support import FakeOpener, forget, run_with, scenario_file, unique_package
from tvdb.db import open_db
from tvdb.pipeline.jobs import JobStore

CANARY = "sk-proj-" + "Zq9Xw8Vu7Ts6Rq5Po4Nm"
USER = f"""
import asyncio
import json
import os
from pathlib import Path

SEEN = []
STORE = {{}}

def run(doc):
    SEEN.append(doc)
    text = doc.content.decode()
    if "explode" in text:
        helper(text)
    if "exit" in text:
        raise SystemExit(3)
    STORE[str(doc.path)] = text
    return len(text)

def helper(text):
    raise ValueError("cannot index {{}} with key {CANARY}".format(text.split()[0]))

async def run_async(doc):
    await asyncio.sleep(0)
    SEEN.append(doc)
    STORE[doc.name] = doc.content.decode()

def query(text, top_k):
    scored = sorted(STORE, key=lambda k: -sum(w in STORE[k] for w in text.split()))
    return scored[:top_k]

def query_job_ids(text, top_k):
    return [d.job_id for d in SEEN if text.split()[0] in d.content.decode()]

def query_broken(text, top_k):
    return "a.txt"

def query_raises(text, top_k):
    raise KeyError(text)
"""


@pytest.fixture
def pkg(tmp_path: Path) -> Iterator[str]:
    name = unique_package(tmp_path, {"user": USER})
    yield name
    forget(name)


def _user(pkg: str):  # type: ignore[no-untyped-def]
    return sys.modules[f"{pkg}.user"]


def test_each_document_is_passed_once_with_its_bytes_and_ids_inside_its_own_scope(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt]\npipeline: {pkg}.user:run\n")
    opener = FakeOpener()
    result = run_with(path, opener)
    assert result.exit_code == 0 and result.passed
    assert [(d.status, d.error_code) for d in result.documents] == [("complete", None), ("complete", None)]
    seen = _user(pkg).SEEN
    assert [(d.path, d.content, d.name) for d in seen] == [
        (tmp_path / "a.txt", b"alpha tide", "a.txt"), (tmp_path / "b.txt", b"bravo harbour", "b.txt")]
    assert [(d.correlation_id, d.job_id) for d in seen] == [(d.correlation_id, d.job_id) for d in result.documents]
    assert opener.opened == [(result.run_id, None)]
    assert opener.session.scopes == [{"correlation_id": d.correlation_id, "job_id": d.job_id}
                                     for d in result.documents]
    assert "content=<10 bytes>" in repr(seen[0])  # a traceback never floods with the document's bytes
    jobs = JobStore(open_db(tmp_path / ".tvdb" / "tvdb.db"), None).jobs(result.run_id)  # type: ignore[arg-type]
    assert [(j.size_bytes, j.media_type) for j in jobs] == [(10, "text/plain"), (13, "text/plain")]
    assert all("pipeline" in (d.stage_ms or {}) for d in jobs)
    assert str(tmp_path) not in sys.path


def test_an_async_function_runs_on_tvdbs_loop(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt]\npipeline: {pkg}.user:run_async\n")
    result = run_with(path, FakeOpener())
    assert result.passed
    assert _user(pkg).STORE == {"a.txt": "alpha tide", "b.txt": "bravo harbour"}


def test_an_exception_fails_only_its_document_with_type_message_and_where_redacted(
        tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt, c.txt]\npipeline: {pkg}.user:run\n",
                         {"a.txt": "alpha tide", "b.txt": "explode now", "c.txt": "charlie"})
    result = run_with(path, FakeOpener())
    a, b, c = result.documents
    assert (a.status, c.status) == ("complete", "complete")
    assert (b.status, b.error_code) == ("failed", "pipeline_error")
    assert b.error_message == f"ValueError: cannot index explode with key sk-*** ({pkg}/user.py:21 in helper)"
    assert b.traceback is not None and "Traceback (most recent call last)" in b.traceback
    assert "in helper" in b.traceback and "sk-***" in b.traceback
    assert result.exit_code == 1 and not result.passed  # documents are expected to complete by default
    stored = open_db(tmp_path / ".tvdb" / "tvdb.db")
    dump = "\n".join(str(r) for t in ("jobs", "events", "runs") for r in stored.table(t).rows)
    assert CANARY not in dump and CANARY not in json.dumps(result.as_json())
    assert result.as_json()["documents"][1]["traceback"] == b.traceback


def test_expected_failures_and_system_exit_are_the_documents_own(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"""\
        name: s
        documents: [a.txt, b.txt]
        pipeline: {pkg}.user:run
        expectations:
          documents:
            - {{document: b.txt, status: failed, error_code: pipeline_error}}
        """, {"a.txt": "alpha", "b.txt": "exit please"})
    result = run_with(path, FakeOpener())
    assert result.passed and result.exit_code == 0
    assert result.documents[1].error_message is not None
    assert result.documents[1].error_message.startswith("SystemExit: 3 (")


def test_a_tvdb_error_in_the_chain_keeps_its_code_and_a_budget_refusal_exits_3(tmp_path: Path) -> None:
    name = unique_package(tmp_path, {"user": """
        from tvdb.errors import CostLimitExceeded

        class APIConnectionError(Exception):
            pass

        def run(doc):
            try:
                raise CostLimitExceeded(spent=0.01, reserved=0.0, limit=0.01, requested=0.002,
                                        window="run")
            except CostLimitExceeded as exc:
                raise APIConnectionError("Connection error.") from exc
        """})
    try:
        path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {name}.user:run\n")
        result = run_with(path, FakeOpener())
    finally:
        forget(name)
    (doc,) = result.documents
    assert (doc.status, doc.error_code) == ("failed", "budget")
    assert "budget" in (doc.error_message or "") and doc.traceback is None
    assert result.exit_code == 3


def test_search_hook_judges_retrieval_by_path_name_or_job_id(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"""\
        name: s
        documents: [a.txt, b.txt]
        pipeline: {pkg}.user:run
        search: {pkg}.user:query
        expectations:
          retrieval:
            - {{query: bravo harbour, document: b.txt, top_k: 1}}
            - {{query: alpha, document: b.txt, top_k: 1}}
        """)
    opener = FakeOpener()
    result = run_with(path, opener)
    hit, miss = [e for e in result.expectations if e.kind == "retrieval"]
    assert (hit.passed, hit.detail) == (True, f"top 1 from {pkg}.user:query: b.txt")
    assert (miss.passed, miss.detail) == (False, f"top 1 from {pkg}.user:query: a.txt")
    assert opener.session.scopes[-2:] == [{"stage": "query"}, {"stage": "query"}]


def test_search_results_may_be_job_ids_and_bad_results_are_verdicts_not_crashes(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"""\
        name: s
        documents: [a.txt, b.txt]
        pipeline: {pkg}.user:run
        search: {pkg}.user:query_job_ids
        expectations:
          retrieval:
            - {{query: bravo, document: b.txt}}
        """)
    (verdict,) = [e for e in run_with(path, FakeOpener()).expectations if e.kind == "retrieval"]
    assert verdict.passed and verdict.detail == f"top 3 from {pkg}.user:query_job_ids: b.txt"
    for hook, detail in (("query_broken", f"{pkg}.user:query_broken returned a str; return a list of document "
                                          "paths or ids, best first"),
                         ("query_raises", f"{pkg}.user:query_raises raised KeyError: 'bravo' ")):
        path.write_text(path.read_text().replace("query_job_ids", hook).replace("query_broken", hook))
        (verdict,) = [e for e in run_with(path, FakeOpener()).expectations if e.kind == "retrieval"]
        assert not verdict.passed and verdict.detail.startswith(detail)


def test_an_unreadable_document_fails_its_job_before_the_hook(tmp_path: Path, pkg: str) -> None:
    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, e.txt]\npipeline: {pkg}.user:run\n",
                         {"a.txt": "alpha", "e.txt": ""})
    result = run_with(path, FakeOpener())
    assert [(d.status, d.error_code) for d in result.documents] == [("complete", None), ("failed", "empty")]
    assert [d.name for d in _user(pkg).SEEN] == ["a.txt"]


def test_estimate_refuses_a_pipeline_scenario(tmp_path: Path, pkg: str) -> None:
    from tests.hook_support import settings_of
    from tvdb.errors import ConfigError
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import check_runnable

    loaded = load_scenario(scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:run\n"))
    with pytest.raises(ConfigError, match="whose requests tvdb cannot foresee: run it in mock mode"):
        check_runnable(settings_of(loaded, tmp_path), loaded.scenario, need_keys=False)


def test_offline_services_get_a_placeholder_key_only_while_the_run_lasts(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    name = unique_package(tmp_path, {"user": """
        import os

        KEYS = []

        def run(doc):
            KEYS.append((os.environ.get("OPENAI_API_KEY"), os.environ.get("LLAMA_CLOUD_API_KEY")))
        """})
    try:
        path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {name}.user:run\n")
        assert run_with(path, FakeOpener()).passed
        monkeypatch.setenv("LLAMA_CLOUD_API_KEY", "llx-users-own-key-0000")
        path.write_text(path.read_text() + "mode: hybrid\nservices: {parser: real}\n")
        assert run_with(path, FakeOpener(), OPENAI_API_KEY="sk-x", LLAMA_CLOUD_API_KEY="llx-y").passed
        keys = sys.modules[f"{name}.user"].KEYS
    finally:
        forget(name)
    assert keys == [("sk-tvdb-placeholder", "llx-tvdb-placeholder"), (None, "llx-users-own-key-0000")]
    assert "OPENAI_API_KEY" not in os.environ


def test_an_interrupted_run_resumes_with_the_unfinished_documents(tmp_path: Path) -> None:
    import asyncio

    from tests.hook_support import settings_of
    from tvdb.clock import FakeClock
    from tvdb.scenarios.loader import load_scenario
    from tvdb.scenarios.runner import RunHooks, resume_run

    name = unique_package(tmp_path, {"user": f"""
        from pathlib import Path

        CALLS = []

        def run(doc):
            CALLS.append(doc.name)
            flag = Path({str(tmp_path / "stop")!r})
            if doc.name == "b.txt" and not flag.exists():
                flag.write_text("once")
                raise KeyboardInterrupt
        """})
    try:
        path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt, b.txt, c.txt]\npipeline: {name}.user:run\n",
                             {"a.txt": "a", "b.txt": "b", "c.txt": "c"})
        loaded = load_scenario(path)
        settings = settings_of(loaded, tmp_path)
        opener = FakeOpener()
        from tvdb.scenarios.runner import start_run

        run_ids: list[str] = []
        hooks = RunHooks(open_session=opener, on_start=lambda run_id, jobs: run_ids.append(run_id))
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(start_run(loaded, settings, clock=FakeClock(), hooks=hooks))
        forget(name)  # a new process: the module is imported again from the stored scenario's folder
        result = asyncio.run(resume_run(run_ids[0], settings, clock=FakeClock(), hooks=hooks))
        calls = sys.modules[f"{name}.user"].CALLS
    finally:
        forget(name)
    assert result.passed and [d.status for d in result.documents] == ["complete"] * 3
    assert calls == ["b.txt", "c.txt"]  # a.txt was done; b.txt starts again from its bytes


def test_the_tables_show_what_tvdb_knows_of_a_users_pipeline(tmp_path: Path, pkg: str) -> None:
    from tvdb.cli.render import _times_table, document_table
    from tvdb.scenarios.results import RunResult

    path = scenario_file(tmp_path, f"name: s\ndocuments: [a.txt]\npipeline: {pkg}.user:run\n")
    result = run_with(path, FakeOpener())
    table = document_table(result, tmp_path)
    assert [c.header for c in table.columns] == ["document", "status", "pages", "tokens", "would cost"]
    assert table.title is not None and table.title.endswith(f"· pipeline {pkg}.user:run")
    assert [c.header for c in _times_table(result, tmp_path).columns] == ["document", "upload", "pipeline"]
    assert RunResult.from_json(result.as_json()).pipeline == f"{pkg}.user:run"
