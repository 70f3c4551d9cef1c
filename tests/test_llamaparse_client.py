"""The real parser (`LlamaParseClient`) against the LlamaParse emulator over loopback HTTP, alone and
inside whole runs: page texts equal mock mode's, every fault ends in the right job state with bounded
attempts, and the ledger reserves, settles or releases consistently (CASES C10, C11, C17)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.llamaparse_support import LLX_CANARY, LLX_KEY
from tvdb.clock import FakeClock
from tvdb.config import Settings, resolve_settings
from tvdb.domain import ParseRequest
from tvdb.emulator.llamaparse import LlamaParseEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.errors import ConfigError, ErrorCode, ParseJobError, PermanentServiceError, QuotaExhausted
from tvdb.faults.plan import FaultPlan
from tvdb.http import MockTransport, Request, Response
from tvdb.pipeline.detect import detect_media_type
from tvdb.scenarios.loader import load_scenario
from tvdb.scenarios.results import RunResult
from tvdb.scenarios.runner import start_run
from tvdb.services.local.parser import parse_document
from tvdb.services.remote.llamaparse_client import build_llamaparse_client
from tvdb.services.retry import ServiceRetryPolicy


@contextmanager
def fake_time_emulator(clock: FakeClock, **kwargs: Any) -> Iterator[tuple[EmulatorServer, LlamaParseEmulator]]:
    """LlamaParse on the run's fake clock: jobs progress exactly as far as the client's polls sleep."""
    service = LlamaParseEmulator(clock=clock.monotonic, per_page_s=0.5, queue_s=0.5, **kwargs)
    with EmulatorServer([service]) as server:
        yield server, service


def settings_for(server: EmulatorServer, key: str = LLX_KEY, **parse: Any) -> Settings:
    return Settings.model_validate({"llama_cloud_api_key": key, "llama_cloud_base_url": server.base_url,
                                    "parse": parse})


def local_pages(data: bytes, name: str) -> list[str]:
    return [p.text for p in parse_document(data, name, detect_media_type(data, name)).pages]


def test_every_corpus_document_parses_to_the_mock_pages(documents_dir: Path) -> None:
    clock = FakeClock()
    outcomes: dict[str, Any] = {}
    with fake_time_emulator(clock) as (server, _):
        async def parse_all() -> None:
            client = build_llamaparse_client(settings_for(server), clock)
            for path in sorted(documents_dir.iterdir()):
                data = path.read_bytes()
                try:
                    media_type = detect_media_type(data, path.name)
                    result = await client.parse(ParseRequest(data, path.name, media_type, "fast"))
                    outcomes[path.name] = [p.text for p in result.document.pages]
                except ParseJobError as exc:
                    outcomes[path.name] = exc.error_code
            await client.aclose()

        asyncio.run(parse_all())
    compared = 0
    for path in sorted(documents_dir.iterdir()):
        data = path.read_bytes()
        try:
            expected: Any = local_pages(data, path.name)
        except Exception as exc:  # noqa: BLE001 — the local failure decides the real one
            code = getattr(exc, "code", None)
            expected = {ErrorCode.ENCRYPTED: ErrorCode.ENCRYPTED, ErrorCode.CORRUPT: ErrorCode.CORRUPT,
                        ErrorCode.NO_TEXT: [""]}.get(code, ErrorCode.SERVICE_ERROR)
        assert outcomes[path.name] == expected, path.name
        compared += isinstance(expected, list)
    assert compared >= 10  # PDFs, DOCX, HTML, Markdown: same pages, same numbers, same text


def _run(tmp_path: Path, server: EmulatorServer, clock: FakeClock, extra: str, docs: dict[str, bytes],
         key: str = LLX_KEY) -> tuple[RunResult, Path]:
    for name, data in docs.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "real-parse.yaml"
    path.write_text(f"name: real-parse\ndocuments: {json.dumps(sorted(docs))}\nservices: {{parser: real}}\n" + extra)
    loaded = load_scenario(path)
    environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "LLAMA_CLOUD_API_KEY": key,
               "LLAMA_CLOUD_BASE_URL": server.base_url}
    settings = resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                scenario_doc=loaded.source)
    return asyncio.run(start_run(loaded, settings, clock=clock)), settings.database_path


def _rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def _docs(documents_dir: Path, *names: str) -> dict[str, bytes]:
    return {n: (documents_dir / n).read_bytes() for n in names}


def test_stuck_job_times_out_is_cancelled_and_the_others_finish(tmp_path: Path, documents_dir: Path) -> None:
    """C10: parse timeout 5 s, poll 1 s: the stuck document fails within ~6 s naming job and file."""
    clock = FakeClock()
    docs = _docs(documents_dir, "agstat.pdf", "minimal-document.pdf", "handbook-1p.docx")
    stuck_first = FaultPlan.of([{"service": "llamaparse", "kind": "stuck", "nth": 1}])  # server-side
    with fake_time_emulator(clock, faults=stuck_first) as (server, service):
        result, db = _run(tmp_path, server, clock,
                          "parse: {timeout_s: 5, poll_interval_s: 1, max_poll_interval_s: 1, concurrency: 3}\n", docs)
        jobs = list(service.jobs.values())
    by_name = {Path(d.path).name: d for d in result.documents}
    # the server counts uploads as they arrive (concurrent connections): ask it which job it stuck
    stuck_job = next(j for j in jobs if j.stuck)
    assert stuck_job.name is not None
    stuck = by_name[stuck_job.name]
    assert stuck.status == "failed" and stuck.error_code == "timeout"
    assert stuck_job.job_id in (stuck.error_message or "") and stuck_job.name in (stuck.error_message or "")
    assert stuck_job.cancelled_at is not None  # cancelled on the service
    assert sorted(d.status for d in result.documents) == ["complete", "complete", "failed"]
    assert stuck.chunks == 0 and stuck.vectors == 0
    # one upload each; the stuck job's reservation settled at the 0 credits its cancel reported
    assert _rows(db, "SELECT COUNT(*) FROM usage WHERE stage = 'parse'") == [(3,)]
    assert _rows(db, "SELECT status FROM reservations WHERE service = 'llamaparse' ORDER BY 1") == [
        ("settled",)] * 3
    assert _rows(db, "SELECT units, status, error_code FROM usage WHERE stage = 'parse' AND job_id = "
                     f"'{stuck.job_id}'") == [(0.0, "error", "timeout")]
    assert clock.monotonic() <= 6.5 + 3  # the others finish within the same window


def test_protected_pdf_and_scan_fail_their_own_jobs(tmp_path: Path, documents_dir: Path) -> None:
    """C17 + C11: a protected PDF fails `encrypted` naming its file and job; a scan fails no_text."""
    clock = FakeClock()
    docs = _docs(documents_dir, "libreoffice-writer-password.pdf", "c02-22.pdf", "minimal-document.pdf")
    with fake_time_emulator(clock) as (server, _):
        result, db = _run(tmp_path, server, clock, "", docs)
    by_name = {Path(d.path).name: d for d in result.documents}
    protected = by_name["libreoffice-writer-password.pdf"]
    assert protected.error_code == "encrypted"
    assert "libreoffice-writer-password.pdf" in (protected.error_message or "")
    assert by_name["c02-22.pdf"].error_code == "no_text" and by_name["c02-22.pdf"].chunks == 0
    assert by_name["minimal-document.pdf"].status == "complete"
    texts = [t for (t,) in _rows(db, "SELECT text FROM pages")]
    assert not any("NO_CONTENT_HERE" in t for t in texts)
    # the scan was parsed and billed (1 credit); the protected PDF's job billed 0
    assert sorted(_rows(db, "SELECT units, status FROM usage WHERE stage = 'parse'")) == [
        (0.0, "error"), (1.0, "ok"), (1.0, "ok")]


def test_an_unreadable_pdf_fails_corrupt_in_mock_and_in_real_mode(tmp_path: Path, documents_dir: Path) -> None:
    # the emulator's FAILED job says UNREADABLE_DOCUMENT; it was `service_error` while mock said `corrupt`
    clock = FakeClock()
    docs = _docs(documents_dir, "invalid.pdf")
    (tmp_path / "real").mkdir()
    with fake_time_emulator(clock) as (server, service):
        real, db = _run(tmp_path / "real", server, clock, "", docs)
        job_id = next(iter(service.jobs))
    (tmp_path / "mock").mkdir()
    (tmp_path / "mock" / "invalid.pdf").write_bytes(docs["invalid.pdf"])
    (tmp_path / "mock" / "s.yaml").write_text("name: mock-parse\ndocuments: [invalid.pdf]\nmode: mock\n")
    loaded = load_scenario(tmp_path / "mock" / "s.yaml")
    settings = resolve_settings(cwd=tmp_path / "mock", environ={"TVDB_DATA_DIR": str(tmp_path / "mock" / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    mock = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    assert [(d.status, d.error_code) for d in (mock.documents[0], real.documents[0])] == [("failed", "corrupt")] * 2
    assert real.documents[0].error_message == (
        f"llamaparse: parse job {job_id} for invalid.pdf is unreadable, damaged or truncated (check that it opens, "
        "or export it again): UNREADABLE_DOCUMENT: unreadable PDF (PdfReadError: startxref not found)")
    assert _rows(db, "SELECT status, error_code, units FROM usage WHERE stage = 'parse'") == [
        ("error", "UNREADABLE_DOCUMENT", 0.0)]


def test_transient_poll_failures_are_retried_without_a_second_upload(tmp_path: Path, documents_dir: Path) -> None:
    clock = FakeClock()
    with fake_time_emulator(clock) as (server, service):
        result, db = _run(tmp_path, server, clock, (
            "faults:\n  - {service: llamaparse, kind: status, status: 503, request: poll, nth: [1, 2]}\n"
            "  - {service: llamaparse, kind: disconnect, request: poll, nth: 3}\n"), _docs(documents_dir, "agstat.pdf"))
        uploads = server.count("POST /api/v2/parse/upload")
    assert result.documents[0].status == "complete"
    assert uploads == 1 and len(service.jobs) == 1
    job_id = next(iter(service.jobs))
    # the upload (billed once), then each retried status poll: cost 0, its HTTP status, `retried`
    assert _rows(db, "SELECT attempt, status, units, cost_usd, would_cost_usd, http_status, error_code, request_id, "
                     "usage_json FROM usage WHERE stage = 'parse' ORDER BY ts, id") == [
        (1, "ok", 1.0, 0.00125, 0.00125, 200, None, job_id, json.dumps(
            {"job_id": job_id, "tier": "fast", "pages": 1, "credits": 1.0}, sort_keys=True)),
        *[(n, "error", 0.0, 0.0, 0.0, status, code, job_id,
           json.dumps({"job_id": job_id, "request": "status", "retried": True}, sort_keys=True))
          for n, status, code in ((1, 503, "ServiceUnavailableError"), (2, 503, "ServiceUnavailableError"),
                                  (3, None, "ServiceUnavailableError"))]]


def test_upload_429_is_retried_and_released_then_402_stops(tmp_path: Path, documents_dir: Path) -> None:
    clock = FakeClock()
    with fake_time_emulator(clock) as (server, _):
        result, db = _run(tmp_path, server, clock, (
            "faults:\n  - {service: llamaparse, kind: status, status: 429, retry_after: 2, nth: 1}\n"
            "  - {service: llamaparse, kind: status, status: 402, nth: 3}\nparse: {concurrency: 1}\n"),
            _docs(documents_dir, "agstat.pdf", "handbook-1p.docx", "minimal-document.pdf"))
        uploads = server.count("POST /api/v2/parse/upload")
    by_name = {Path(d.path).name: d for d in result.documents}
    assert by_name["agstat.pdf"].status == "complete"
    assert by_name["handbook-1p.docx"].error_code == "quota"
    # out of credits: the document after it is never sent (and costs nothing)
    assert by_name["minimal-document.pdf"].error_code == "quota"
    assert "not sent" in (by_name["minimal-document.pdf"].error_message or "")
    assert 2.0 in clock.sleeps
    assert uploads == 1  # the 429 and the 402 were injected in front of the service
    assert _rows(db, "SELECT attempt, status, http_status FROM usage WHERE stage = 'parse' ORDER BY id") == [
        (1, "error", 429), (2, "ok", 200), (1, "error", 402)]  # 402 is permanent: one attempt
    assert _rows(db, "SELECT status, COUNT(*) FROM reservations GROUP BY status ORDER BY 1") == [
        ("released", 2), ("settled", 1)]


def test_partial_pages_warn_or_fail_past_the_ratio(tmp_path: Path, documents_dir: Path) -> None:
    clock = FakeClock()
    docs = _docs(documents_dir, "pdflatex-4-pages.pdf")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with fake_time_emulator(clock) as (server, _):
        ok, _ = _run(tmp_path / "a", server, clock, "faults:\n  - {service: llamaparse, kind: partial, pages: 1}\n",
                     docs)
        bad, db = _run(tmp_path / "b", server, clock, "faults:\n  - {service: llamaparse, kind: partial, pages: 3}\n",
                       docs)
    assert ok.documents[0].status == "complete" and ok.documents[0].pages == 4
    assert bad.documents[0].error_code == "partial_parse"
    assert "3 of 4 pages" in (bad.documents[0].error_message or "")
    # the job was billed for its 4 pages (job.usage.credits) even though the document failed
    assert _rows(db, "SELECT units, status FROM usage WHERE stage = 'parse'") == [(4.0, "error")]


def test_job_failed_fault_and_credits_null_estimate(documents_dir: Path) -> None:
    clock = FakeClock()
    data = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()

    def handler(request: Request) -> Response:
        job = {"id": "job-1", "project_id": "p", "status": "COMPLETED", "usage": {"credits": None}}
        if request.method == "POST":
            return Response(200, json={**job, "status": "PENDING"})
        pages = [{"page_number": 1, "markdown": "", "success": True}]
        return Response(200, json={"job": job, "markdown": {"pages": pages},
                                   "text": {"pages": [{"page_number": 1, "text": "from the text layer"}]}})

    settings = Settings.model_validate({"llama_cloud_api_key": LLX_KEY, "parse": {"poll_interval_s": 0.5}})
    client = build_llamaparse_client(settings, clock, transport=MockTransport(handler))
    result = asyncio.run(client.parse(ParseRequest(data, "a.pdf", "application/pdf", "fast")))
    assert [p.text for p in result.document.pages] == ["from the text layer"]  # markdown empty: text
    assert result.usage["estimated"] is True and result.usage["credits"] is None


def test_permanent_errors_and_the_key_never_leaks(tmp_path: Path, documents_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    with fake_time_emulator(clock) as (server, _):
        result, db = _run(tmp_path, server, clock, (
            "faults:\n  - {service: llamaparse, kind: status, status: 401, message: 'bad key " + LLX_CANARY + "'}\n"),
            _docs(documents_dir, "agstat.pdf"), key=LLX_CANARY)
        client = build_llamaparse_client(settings_for(server, key="llx-x", tier="fast"), clock,
                                         retry=ServiceRetryPolicy(sleep=clock.sleep))
        with pytest.raises(PermanentServiceError) as not_llx:
            asyncio.run(client.parse(ParseRequest(b"x", "a.txt", "text/plain", "turbo")))
    assert result.documents[0].error_code == "service_error"
    assert _rows(db, "SELECT COUNT(*) FROM usage WHERE stage = 'parse'") == [(1,)]
    assert not_llx.value.status == 422 and "tier" in not_llx.value.message
    dump = "\n".join(str(r) for r in _rows(db, "SELECT * FROM usage") + _rows(db, "SELECT * FROM jobs"))
    for text in (dump, caplog.text, str(result)):
        assert LLX_CANARY not in text
    assert not isinstance(not_llx.value, QuotaExhausted)


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="LLAMA_CLOUD_API_KEY"):
        build_llamaparse_client(Settings(), FakeClock())


def test_the_real_parse_emulated_scenario_passes_against_tvdb_emulate(tmp_path: Path) -> None:
    from tests.llamaparse_support import parse_emulator
    from tvdb.clock import SystemClock

    path = Path(__file__).resolve().parents[1] / "scenarios" / "real-parse-emulated.yaml"
    loaded = load_scenario(path)
    with parse_emulator(parse_per_page_ms=20, parse_queue_ms=20) as server:
        environ = {"TVDB_DATA_DIR": str(tmp_path / ".tvdb"), "LLAMA_CLOUD_API_KEY": LLX_KEY,
                   "LLAMA_CLOUD_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-fake-test-0123456789abcdef",
                   "OPENAI_BASE_URL": server.openai_base_url}
        settings = resolve_settings(cwd=tmp_path, environ=environ, scenario=loaded.scenario.settings_layer(),
                                    scenario_doc=loaded.source)
        result = asyncio.run(start_run(loaded, settings, clock=SystemClock()))
        uploads = server.count("POST /api/v2/parse/upload")
        # run again in the same data dir, as the README's walkthrough invites: `reuse: false` parses
        # again (reused documents sent no request and the request-count expectation failed)
        again = asyncio.run(start_run(load_scenario(path), settings, clock=SystemClock()))
        assert again.passed, [e for e in again.expectations if not e.passed]
        assert server.count("POST /api/v2/parse/upload") == 8
    assert result.passed, [e for e in result.expectations if not e.passed]
    assert uploads == 4
    parse_rows = _rows(settings.database_path, "SELECT implementation, units, cost_usd, usage_json, http_status "
                       "FROM usage WHERE stage = 'parse' AND run_id = ? ORDER BY id", [result.run_id])
    polls = [r for r in parse_rows if json.loads(r[3]).get("request") == "status"]
    assert [(r[0], r[1], r[2], r[4], json.loads(r[3])["retried"]) for r in polls] == [("real", 0.0, 0.0, 503, True)]
    rows = [r for r in parse_rows if r not in polls]  # the uploads: one per document, billed in credits
    assert len(rows) == 4 and {r[0] for r in rows} == {"real"}
    assert all(json.loads(r[3])["credits"] == r[1] for r in rows)  # fast tier: 1 credit per page
    assert sum(r[2] for r in rows) == pytest.approx(sum(r[1] for r in rows) * 1.25 / 1000)


def test_job_faults_in_mock_mode_end_as_the_real_client_ends_them(tmp_path: Path, documents_dir: Path) -> None:
    docs = _docs(documents_dir, "agstat.pdf", "handbook-1p.docx", "minimal-document.pdf", "pdflatex-4-pages.pdf")
    for name, data in docs.items():
        (tmp_path / name).write_bytes(data)
    path = tmp_path / "mock.yaml"
    path.write_text(f"name: mock-job-faults\ndocuments: {json.dumps(sorted(docs))}\nparse: {{concurrency: 1}}\n"
                    "faults:\n  - {service: llamaparse, kind: stuck, nth: 1}\n"
                    "  - {service: llamaparse, kind: job_failed, nth: 2, message: 'PDF_IS_PROTECTED: locked'}\n"
                    "  - {service: llamaparse, kind: partial, nth: 3, pages: 1}\n"
                    "  - {service: llamaparse, kind: partial, nth: 4, pages: 3}\n")
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), scenario_doc=loaded.source)
    result = asyncio.run(start_run(loaded, settings, clock=FakeClock()))
    codes = {Path(d.path).name: d.error_code for d in result.documents}
    # minimal-document.pdf has 1 page: 1 of 1 failed is past the 0.5 ratio; 3 of 4 likewise
    assert codes == {"agstat.pdf": "timeout", "handbook-1p.docx": "encrypted",
                     "minimal-document.pdf": "partial_parse", "pdflatex-4-pages.pdf": "partial_parse"}


def test_a_replay_run_builds_the_parser_as_replay_without_a_key(tmp_path: Path) -> None:
    from tests.openai_support import metered_caller
    from tvdb.domain import Implementation
    from tvdb.services.factory import build_router

    clock = FakeClock()
    settings = Settings.model_validate({"mode": "real"})
    router = build_router(settings, metered_caller(tmp_path, clock), clock, replay=True)
    real = router.parser.real
    assert real is not None and real.implementation is Implementation.REPLAY
    asyncio.run(real.aclose())
