"""The LlamaParse emulator, driven by the official `llama-cloud` SDK (Parse API v2) over loopback HTTP:
its own parse()/polling helper, result models and error classes accept every answer (contracts.md §2.3, §2.4)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import llama_cloud
import pytest
from llama_cloud import LlamaCloud
from llama_cloud.types.parsing_get_response import MarkdownPageMarkdownResultPage

from tests.llamaparse_support import LLX_KEY, llamaparse_of, parse_emulator, upload_tuple
from tvdb.clock import FakeClock
from tvdb.emulator.base import EmulatorRequest
from tvdb.emulator.llamaparse import LlamaParseEmulator
from tvdb.emulator.parsejobs import CREDITS_PER_PAGE
from tvdb.emulator.server import EmulatorServer
from tvdb.emulator.webhooks import WebhookDispatcher, sign
from tvdb.faults.plan import FaultPlan
from tvdb.http import Client
from tvdb.pipeline.detect import detect_media_type
from tvdb.services.local.parser import parse_document

FAST_POLL: dict[str, Any] = {"polling_interval": 0.02, "max_interval": 0.05, "timeout": 10}


def sdk(server: EmulatorServer, key: str = LLX_KEY) -> LlamaCloud:
    return LlamaCloud(api_key=key, base_url=server.llama_cloud_base_url, max_retries=0)


def local_pages(path: Path) -> list[str]:
    data = path.read_bytes()
    return [p.text for p in parse_document(data, path.name, detect_media_type(data, path.name)).pages]


@pytest.mark.parametrize("tier", list(CREDITS_PER_PAGE))
def test_sdk_parse_reads_local_parser_pages_and_tier_credits(tier: str, documents_dir: Path) -> None:
    doc = documents_dir / "pdflatex-4-pages.pdf"
    with parse_emulator() as server:
        result = sdk(server).parsing.parse(tier=tier, version="latest", upload_file=upload_tuple(doc),
                                           expand=["markdown", "text"], **FAST_POLL)
    assert result.job.status == "COMPLETED"
    assert result.job.tier == tier
    assert result.job.usage is not None and result.job.usage.credits == 4 * CREDITS_PER_PAGE[tier]
    assert result.markdown is not None and result.text is not None
    pages = [p for p in result.markdown.pages if isinstance(p, MarkdownPageMarkdownResultPage)]
    assert [p.page_number for p in pages] == [1, 2, 3, 4]
    assert [p.markdown for p in pages] == local_pages(doc)
    assert [p.text for p in result.text.pages] == local_pages(doc)


def test_docx_and_html_pages_and_page_ranges(documents_dir: Path) -> None:
    docx, pdf = documents_dir / "handbook-1p.docx", documents_dir / "pdflatex-4-pages.pdf"
    with parse_emulator() as server:
        client = sdk(server)
        got = client.parsing.parse(tier="fast", version="latest", upload_file=upload_tuple(docx),
                                   expand=["text"], **FAST_POLL)
        assert got.text is not None and [p.text for p in got.text.pages] == local_pages(docx)
        ranged = client.parsing.parse(tier="fast", version="latest", upload_file=upload_tuple(pdf),
                                      page_ranges={"target_pages": "2-3"}, expand=["text"], **FAST_POLL)
        capped = client.parsing.parse(tier="cost_effective", version="latest", upload_file=upload_tuple(pdf),
                                      page_ranges={"max_pages": 1}, expand=["markdown_full"], **FAST_POLL)
    assert ranged.text is not None and [p.page_number for p in ranged.text.pages] == [2, 3]
    assert ranged.job.usage is not None and ranged.job.usage.credits == 2
    assert capped.markdown_full == local_pages(pdf)[0]
    assert capped.job.usage is not None and capped.job.usage.credits == 3


def test_credits_null_until_completed_and_expand_forms(documents_dir: Path) -> None:
    clock = FakeClock()
    service = LlamaParseEmulator(per_page_s=1.0, queue_s=0.5, clock=clock.monotonic)
    pdf = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()
    boundary = "b" * 32
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="configuration"\r\n\r\n'
            '{"tier": "agentic", "version": "latest"}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
            'Content-Type: application/pdf\r\n\r\n').encode() + pdf + f"\r\n--{boundary}--\r\n".encode()
    headers = {"authorization": f"Bearer {LLX_KEY}", "content-type": f"multipart/form-data; boundary={boundary}"}
    created = json.loads(service.handle(EmulatorRequest("POST", "/api/v2/parse/upload", headers, body)).body)
    assert "job" not in created and created["status"] == "PENDING" and created["usage"] == {"credits": None}

    def get(query: str) -> dict[str, Any]:
        reply = service.handle(EmulatorRequest("GET", f"/api/v2/parse/{created['id']}", headers, b"", query))
        assert reply.status == 200
        return json.loads(reply.body)  # type: ignore[no-any-return]

    clock.advance(1.0)
    running = get("expand=markdown")
    assert running["job"]["status"] == "RUNNING" and running["job"]["usage"]["credits"] is None
    assert "markdown" not in running
    clock.advance(4.0)
    repeated, comma = get("expand=markdown&expand=text"), get("expand=markdown,text,metadata,job_metadata")
    assert repeated["job"]["usage"]["credits"] == 40.0
    assert set(repeated) == {"job", "markdown", "text"}
    assert set(comma) == {"job", "markdown", "text", "metadata", "job_metadata"}
    assert comma["job_metadata"]["job_pages"] == 4


def test_file_id_route_and_list_and_cancel(documents_dir: Path) -> None:
    doc = documents_dir / "minimal-document.pdf"
    with parse_emulator(parse_queue_ms=60_000) as server:
        client = sdk(server)
        file = client.files.create(file=upload_tuple(doc), purpose="parse")
        job = client.parsing.create(tier="fast", version="latest", file_id=file.id)
        assert job.status == "PENDING"
        listed = [j.id for j in client.parsing.list()]
        cancelled = client.parsing.cancel(job.id)
        assert cancelled.status == "CANCELLED"
        after = client.parsing.get(job.id)
    assert job.id in listed
    assert after.job.status == "CANCELLED" and after.job.usage is not None and after.job.usage.credits == 0


def test_protected_pdf_fails_with_pdf_is_protected_and_scan_reads_no_content(documents_dir: Path) -> None:
    with parse_emulator() as server:
        client = sdk(server)
        with pytest.raises(llama_cloud._polling.PollingError, match="PDF_IS_PROTECTED"):
            client.parsing.parse(tier="fast", version="latest", expand=["text"],
                                 upload_file=upload_tuple(documents_dir / "libreoffice-writer-password.pdf"),
                                 **FAST_POLL)
        scan = client.parsing.parse(tier="fast", version="latest", expand=["markdown"],
                                    upload_file=upload_tuple(documents_dir / "c02-22.pdf"), **FAST_POLL)
    assert scan.markdown is not None
    assert [p.markdown for p in scan.markdown.pages] == ["NO_CONTENT_HERE"]  # type: ignore[union-attr]


# --- errors: the SDK raises the class the real service's answer makes it raise -----------------------------


def test_error_classes_401_402_422_429_500(documents_dir: Path) -> None:
    doc = upload_tuple(documents_dir / "pdflatex-4-pages.pdf")
    with parse_emulator(parse_credits=5, parse_uploads_per_10s=2,
                        faults=[{"service": "llamaparse", "kind": "status", "status": 500, "nth": 1}]) as server:
        with pytest.raises(llama_cloud.InternalServerError):
            sdk(server).parsing.create(tier="fast", version="latest", upload_file=doc)
        with Client() as raw:  # the SDK refuses to send an empty key; a bare request has none
            no_key = raw.get(server.llama_cloud_base_url + "/api/v2/parse")
        with pytest.raises(llama_cloud.AuthenticationError) as bad_key:
            sdk(server, key="sk-not-llamacloud").parsing.create(tier="fast", version="latest", upload_file=doc)
        with pytest.raises(llama_cloud.UnprocessableEntityError) as bad_tier:
            sdk(server).parsing.create(tier="turbo", version="latest", upload_file=doc)
        with pytest.raises(llama_cloud.UnprocessableEntityError) as bad_range:
            sdk(server).parsing.create(tier="fast", version="latest", upload_file=doc,
                                       page_ranges={"target_pages": "3-1"})
        sdk(server).parsing.create(tier="fast", version="latest", upload_file=doc)  # 4 of 5 credits
        with pytest.raises(llama_cloud.APIStatusError) as quota:
            sdk(server).parsing.create(tier="fast", version="latest", upload_file=doc)
        with pytest.raises(llama_cloud.RateLimitError) as limited:
            for _ in range(3):
                sdk(server).parsing.create(tier="fast", version="latest", upload_file=upload_tuple(
                    documents_dir / "umlauts-non-utf8.md"))
    assert no_key.status_code == 401 and no_key.json() == {"detail": "Not authenticated"}
    assert bad_key.value.body == {"detail": "Invalid authentication token"}
    assert bad_tier.value.body["detail"][0]["loc"] == ["body", "tier"]  # type: ignore[index]
    assert bad_range.value.body["detail"][0]["loc"] == ["body", "page_ranges", "target_pages"]  # type: ignore[index]
    assert quota.value.status_code == 402
    assert "maximum number of credits" in str(quota.value.body)
    assert float(limited.value.response.headers["retry-after"]) > 0


def test_429_without_retry_after(documents_dir: Path) -> None:
    with parse_emulator(parse_uploads_per_10s=1, parse_retry_after=False) as server:
        sdk(server).parsing.create(tier="fast", version="latest", upload_file=upload_tuple(
            documents_dir / "umlauts-non-utf8.md"))
        with pytest.raises(llama_cloud.RateLimitError) as limited:
            sdk(server).parsing.create(tier="fast", version="latest", upload_file=upload_tuple(
                documents_dir / "umlauts-non-utf8.md"))
    assert "retry-after" not in limited.value.response.headers
    assert limited.value.body == {"detail": "Too Many Requests"}


# --- server-side faults -------------------------------------------------------------------------------------


def test_job_faults_stuck_failed_partial_and_poll_faults(documents_dir: Path) -> None:
    doc = upload_tuple(documents_dir / "pdflatex-4-pages.pdf")
    faults = [
        {"service": "llamaparse", "kind": "stuck", "nth": 1},
        {"service": "llamaparse", "kind": "job_failed", "nth": 2, "message": "INTERNAL_ERROR: worker lost"},
        {"service": "llamaparse", "kind": "partial", "nth": 3, "pages": 2},
        {"service": "llamaparse", "kind": "status", "status": 503, "request": "poll", "nth": 1},
    ]
    with parse_emulator(faults=faults) as server:
        client = sdk(server)
        stuck = client.parsing.create(tier="fast", version="latest", upload_file=doc)
        with pytest.raises(llama_cloud.InternalServerError):  # the first status request: 503
            client.parsing.get(stuck.id)
        with pytest.raises(llama_cloud._polling.PollingTimeoutError):
            client.parsing.wait_for_completion(stuck.id, polling_interval=0.02, max_interval=0.02, timeout=0.2)
        with pytest.raises(llama_cloud._polling.PollingError, match="worker lost"):
            client.parsing.parse(tier="fast", version="latest", upload_file=doc, expand=["text"], **FAST_POLL)
        partial = client.parsing.parse(tier="fast", version="latest", upload_file=doc, expand=["markdown"],
                                       **FAST_POLL)
    assert partial.markdown is not None
    assert [p.success for p in partial.markdown.pages] == [False, False, True, True]
    assert partial.job.usage is not None and partial.job.usage.credits == 2


# --- webhooks -----------------------------------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    statuses: list[int]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        # only signed deliveries (the first hook's) are failed, so which hook is retried is certain
        signed = "lc-signature" in {k.lower() for k in self.headers}
        status = type(self).statuses.pop(0) if type(self).statuses and signed else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_webhooks_signed_filtered_formatted_and_retried(documents_dir: Path) -> None:
    handler = type("Sink", (_Sink,), {"received": [], "statuses": [500]})
    sink = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
    try:
        with parse_emulator() as server:
            dispatcher = llamaparse_of(server).on_job.__self__  # type: ignore[union-attr]
            assert isinstance(dispatcher, WebhookDispatcher)
            dispatcher.backoff_s = (0.01,)
            hooks = [{"webhook_url": url, "webhook_signing_secret": "whsec-test", "webhook_headers": {"X-Team": "t"},
                      "webhook_events": ["parse.pending", "parse.success"]},
                     {"webhook_url": url, "webhook_output_format": "json", "webhook_events": ["parse.success"]}]
            job = sdk(server).parsing.parse(tier="fast", version="latest", webhook_configurations=hooks,  # type: ignore[arg-type]
                                            upload_file=upload_tuple(documents_dir / "minimal-document.pdf"),
                                            expand=["text"], **FAST_POLL)
            deadline = threading.Event()
            for _ in range(750):  # up to 15 s: the machine may be loaded
                if len(handler.received) >= 4:
                    break
                deadline.wait(0.02)
    finally:
        sink.shutdown()
        sink.server_close()
    events: list[tuple[str, bool, str | None]] = []
    for headers, body in handler.received:
        decoded = json.loads(body)
        payload = json.loads(decoded) if isinstance(decoded, str) else decoded
        assert payload["job_id"] == job.job.id
        signature = headers.get("lc-signature")
        if signature is not None:
            assert signature == sign("whsec-test", body)
            assert hmac.compare_digest(signature, "sha256=" + hmac.new(b"whsec-test", body, hashlib.sha256).hexdigest())
            assert headers["x-team"] == "t"
        events.append((payload["event_type"], isinstance(decoded, str), signature and "signed"))
    # the first delivery got a 500 and was retried; the json-format hook sends an object, unsigned
    assert sorted(events) == sorted([("parse.pending", True, "signed"), ("parse.pending", True, "signed"),
                                     ("parse.success", True, "signed"), ("parse.success", False, None)])


def test_fault_plan_rejects_job_kinds_elsewhere() -> None:
    with pytest.raises(ValueError, match="llamaparse"):
        FaultPlan.of([{"service": "openai", "kind": "stuck"}])
    with pytest.raises(ValueError, match="request: poll"):
        FaultPlan.of([{"service": "llamaparse", "kind": "partial", "request": "poll"}])
