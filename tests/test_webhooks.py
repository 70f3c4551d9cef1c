"""Webhook receiving: LC-Signature verified over the raw body in constant time; missing, malformed, forged,
truncated and oversize deliveries refused with nothing stored; replays acknowledged and ignored; and a
run with `parse.webhook: true` learns each job's end from the emulator's signed deliveries."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.llamaparse_support import LLX_KEY, parse_emulator
from tvdb.clock import SystemClock
from tvdb.config import Settings
from tvdb.domain import ParseRequest
from tvdb.http import Client
from tvdb.services.remote.llamaparse_client import build_llamaparse_client
from tvdb.webhooks.receiver import WebhookReceiver
from tvdb.webhooks.verify import expected_signature, verify

SECRET = "whsec-fake-test-0123456789"
BODY = json.dumps({"event_id": "ev-1", "event_type": "parse.success", "job_id": "job-1",
                   "status": "COMPLETED"}).encode()


def test_verify_accepts_only_the_exact_signature() -> None:
    good = expected_signature(SECRET, BODY)
    accepted = verify(SECRET, {"lc-signature": good}, BODY)
    assert accepted.status == 200 and accepted.event is not None
    assert (accepted.event.job_id, accepted.event.status, accepted.event.dedupe_key) == ("job-1", "COMPLETED",
                                                                                         "event:ev-1")
    assert verify(SECRET, {}, BODY).status == 401
    assert verify(SECRET, {"lc-signature": good[:-2]}, BODY).status == 401  # truncated signature
    assert verify(SECRET, {"lc-signature": "sha1=" + good[7:]}, BODY).status == 401  # malformed
    assert verify(SECRET, {"lc-signature": expected_signature("other", BODY)}, BODY).status == 401  # forged
    assert verify(SECRET, {"lc-signature": good}, BODY[:-1]).status == 401  # truncated body
    assert verify(SECRET, {"lc-signature": good}, BODY, max_bytes=10).status == 413
    # the default output format: a JSON-encoded string; no event id → sha256 of the raw body
    wrapped = json.dumps(json.dumps({"event_type": "parse.error", "job": {"id": "job-2", "status": "FAILED"}})).encode()
    event = verify(SECRET, {"lc-signature": expected_signature(SECRET, wrapped)}, wrapped).event
    assert event is not None and (event.job_id, event.status) == ("job-2", "FAILED")
    assert event.dedupe_key.startswith("sha256:")


def test_receiver_over_http_refuses_stores_nothing_and_dedupes() -> None:
    receiver = WebhookReceiver(SECRET).start()
    try:
        with Client(timeout=5) as client:
            sig = {"LC-Signature": expected_signature(SECRET, BODY)}
            assert client.post(receiver.url, content=BODY).status_code == 401
            assert client.post(receiver.url, content=BODY, headers={"LC-Signature": "sha256=" + "0" * 64}
                               ).status_code == 401
            assert client.post(receiver.url, content=b"x" * (2 << 20), headers=sig).status_code == 413
            assert receiver.events == [] and receiver.refused == 2
            assert client.post(receiver.url, content=BODY, headers=sig).status_code == 200
            replay = client.post(receiver.url, content=BODY, headers=sig)
            assert replay.status_code == 200 and "duplicate" in replay.text
        # a client that promises more bytes than it sends is cut off, nothing stored
        host, port = receiver.url.split("//")[1].rstrip("/").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nLC-Signature: "
                         + sig["LC-Signature"].encode() + b"\r\n\r\n" + BODY[:10])
            sock.shutdown(socket.SHUT_WR)
            assert b" 400 " in sock.recv(200)
    finally:
        receiver.stop()
    assert len(receiver.events) == 1 and receiver.duplicates == 1


def test_wait_returns_an_event_that_came_first_and_times_out_otherwise() -> None:
    receiver = WebhookReceiver(SECRET)
    receiver.receive({"lc-signature": expected_signature(SECRET, BODY)}, BODY)

    async def both() -> tuple[str | None, str | None]:
        return await receiver.wait("job-1", 1.0), await receiver.wait("job-9", 0.01)

    assert asyncio.run(both()) == ("COMPLETED", None)
    receiver.stop()


@pytest.mark.parametrize("grace_s", [30.0, 0.05])
def test_parse_with_webhooks_needs_no_status_polls(documents_dir: Path, grace_s: float) -> None:
    """With the event, no status request at all; with a grace shorter than the job, polling takes over."""
    data = (documents_dir / "pdflatex-4-pages.pdf").read_bytes()
    with parse_emulator(parse_per_page_ms=50, parse_queue_ms=50) as server:
        receiver = WebhookReceiver(SECRET).start()
        settings = Settings.model_validate({"llama_cloud_api_key": LLX_KEY, "llama_cloud_base_url": server.base_url,
                                            "parse": {"poll_interval_s": 0.05, "webhook_grace_s": grace_s}})
        client = build_llamaparse_client(settings, SystemClock(), waiter=receiver)

        async def go() -> list[str]:
            result = await client.parse(ParseRequest(data, "a.pdf", "application/pdf", "fast"))
            await client.aclose()
            return [p.text for p in result.document.pages]

        pages = asyncio.run(go())
    assert len(pages) == 4
    if grace_s > 1:
        assert client.status_requests == 0 and [e.event_type for e in receiver.events] == ["parse.success"]
    else:
        assert client.status_requests >= 1


def test_cli_webhook_serve_prints_accepted_events_and_needs_the_secret(tmp_path: Path) -> None:
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "TVDB_DATA_DIR": str(tmp_path)}
    env.pop("LLAMA_CLOUD_WEBHOOK_SECRET", None)
    missing = subprocess.run([sys.executable, "-m", "tvdb", "webhook", "serve", "--port", "0"], env=env,
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "LLAMA_CLOUD_WEBHOOK_SECRET" in missing.stderr + missing.stdout
    proc = subprocess.Popen([sys.executable, "-m", "tvdb", "webhook", "serve", "--port", "0"],
                            env={**env, "LLAMA_CLOUD_WEBHOOK_SECRET": SECRET}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", proc.stdout.readline())
        assert url, "no URL printed"
        with Client(timeout=5) as client:
            assert client.post(url[1], content=BODY, headers={"LC-Signature": "sha256=" + "1" * 64}).status_code == 401
            assert client.post(url[1], content=BODY,
                               headers={"LC-Signature": expected_signature(SECRET, BODY)}).status_code == 200
        # the refusal's log line and the event, after the "Ctrl-C to stop." hint whose place among
        # them depends on when the two streams are flushed: read a few lines, not exactly two
        lines: list[str] = []
        while len(lines) < 3 and not any("parse.success job job-1 (COMPLETED)" in line for line in lines):
            lines.append(proc.stdout.readline())
        assert any("parse.success job job-1 (COMPLETED)" in line for line in lines), lines
    finally:
        out = _stop(proc)
    assert "1 accepted, 0 duplicates, 1 refused" in out


def test_cli_webhook_serve_json_prints_one_object_when_stopped(tmp_path: Path) -> None:
    import json
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "TVDB_DATA_DIR": str(tmp_path), "LLAMA_CLOUD_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "tvdb", "webhook", "serve", "--port", "0", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", proc.stderr.readline())  # the address: on stderr
        assert url, "no URL printed"
        with Client(timeout=5) as client:
            assert client.post(url[1], content=BODY,
                               headers={"LC-Signature": expected_signature(SECRET, BODY)}).status_code == 200
            assert client.post(url[1], content=BODY, headers={"LC-Signature": "sha256=" + "1" * 64}).status_code == 401
    finally:
        out = _stop(proc)
    doc = json.loads(out)  # stdout holds exactly one object
    assert (doc["url"], doc["accepted"], doc["duplicates"], doc["refused"]) == (url[1], 1, 0, 1)
    assert [(e["event_type"], e["job_id"], e["status"]) for e in doc["events"]] == [
        ("parse.success", "job-1", "COMPLETED")]


def _stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C the server and return its stdout; killed if it does not stop, so a failing test never
    leaves a server running on the machine."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return out
