"""Cassette machinery without the pipeline: match keys, multipart (C04), scrubbing (C14), the secret
scan, safe loading, atomic writes, every write path, and misses."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from vcr.request import Request as VcrRequest

from tvdb.config import Settings
from tvdb.errors import CassetteError, CassetteMiss
from tvdb.http import Client, MockTransport, Request, Response
from tvdb.ledger.prices import PriceTable
from tvdb.recording.keys import request_shape
from tvdb.recording.scan import scan_text
from tvdb.recording.session import Tape, use_tape
from tvdb.recording.store import CassetteStore, decode_body, read_cassette

OPENAI_CANARY = "sk-canary-7f3a9c1e5b2d8046aa11"
LLX_CANARY = "llx-canary-0b9e3d71c4a2f6e85d10"
HOOK_TOKEN = "hooktoken-canary-5e1f0c9a"


def settings(**extra: Any) -> Settings:
    return Settings.model_validate({"openai_api_key": OPENAI_CANARY, "llama_cloud_api_key": LLX_CANARY, **extra})


def tape(path: Path, mode: str = "all", fresh: bool = False) -> Tape:
    return Tape(path=path, record_mode=mode, fresh=fresh, scenario="unit",  # type: ignore[arg-type]
                scenario_path="scenario.yaml")


def session(path: Path, mode: str = "all", fresh: bool = False) -> Any:
    return use_tape(tape(path, mode, fresh), settings(), PriceTable.load())


def server(handler: Callable[[Request], Response] | None = None) -> Client:
    """A client whose transport answers like a server would; vcrpy records its answers."""

    def answer(request: Request) -> Response:
        if handler is not None:
            return handler(request)
        return Response(200, json={"ok": True, "path": request.url.path},
                        headers={"set-cookie": "__cf_bm=cookie-canary-1", "openai-project": "proj_canary"})

    return Client(transport=MockTransport(answer), base_url="http://127.0.0.1:9999")


def refusing() -> Client:
    def answer(request: Request) -> Response:
        raise AssertionError(f"replay reached the transport: {request.url}")

    return Client(transport=MockTransport(answer), base_url="http://replay.invalid:1")


def upload(client: Client, pdf: Path, boundary: str, webhook: str | None = None) -> Response:
    config: dict[str, Any] = {"tier": "fast", "version": "latest"}
    if webhook:
        config["webhook_configurations"] = [{"webhook_url": webhook, "webhook_signing_secret": "whsec_canarysecret1"}]
    body, ctype = multipart({"configuration": json.dumps(config)}, ("file", pdf.name, pdf.read_bytes()), boundary)
    return client.post("/api/v2/parse/upload", content=body, headers={"content-type": ctype})


def multipart(fields: dict[str, str], file: tuple[str, str, bytes], boundary: str) -> tuple[bytes, str]:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    name, filename, data = file
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/pdf\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


# -- match keys -------------------------------------------------------------------------------------
def test_keys_ignore_scheme_host_port_json_order_and_whitespace() -> None:
    a = request_shape("POST", "https://api.openai.com/v1/embeddings?x=1&y=2",
                      '{"model": "m", "input": ["a"], "dimensions": 8}', "application/json")
    b = request_shape("post", "http://127.0.0.1:51234/v1/embeddings?y=2&x=1",
                      b'{"dimensions":8,"input":["a"],"model":"m"}', "application/json")
    assert a.key == b.key
    assert request_shape("POST", "http://h/v1/embeddings", '{"model":"m","input":["b"]}', None).key != a.key


def test_embedding_keys_read_a_string_input_and_any_encoding_format_alike() -> None:
    theirs = request_shape("POST", "https://api.openai.com/v1/embeddings",
                           '{"input": "hello", "model": "m", "encoding_format": "float"}', "application/json")
    ours = request_shape("POST", "http://x/v1/embeddings", '{"model":"m","input":["hello"],"encoding_format":"base64"}',
                         "application/json")
    assert theirs.key == ours.key


def test_multipart_keys_ignore_the_boundary_and_part_order(documents_dir: Path) -> None:
    pdf = (documents_dir / "minimal-document.pdf").read_bytes()
    one, ct1 = multipart({"configuration": '{"tier": "fast"}'}, ("file", "a.pdf", pdf), "b" * 32)
    two, ct2 = multipart({"configuration": '{"tier":"fast"}'}, ("file", "a.pdf", pdf), "0123456789abcdef" * 2)
    s1, s2 = request_shape("POST", "http://h/u", one, ct1), request_shape("POST", "http://h/u", two, ct2)
    assert s1.kind == "multipart" and s1.key == s2.key
    assert dict(s1.fields)["file"].startswith("file 'a.pdf', ")
    other, ct3 = multipart({"configuration": '{"tier":"fast"}'}, ("file", "a.pdf", pdf + b" "), "c" * 32)
    assert request_shape("POST", "http://h/u", other, ct3).key != s1.key


# -- C04: multipart uploads replay across boundaries; another PDF is a clear miss ----------------
def test_c04_upload_replays_with_a_new_boundary_and_another_pdf_misses(tmp_path: Path, documents_dir: Path) -> None:
    path = tmp_path / "c04.yaml"
    minimal, other = documents_dir / "minimal-document.pdf", documents_dir / "pdflatex-4-pages.pdf"
    with session(path, fresh=True):
        assert upload(server(), minimal, "a" * 32).status_code == 200
    assert b"!!binary" in path.read_bytes()  # the PDF bytes are stored as they were sent
    with session(path, "none"):
        replayed = upload(refusing(), minimal, "f" * 32)
        assert replayed.json() == {"ok": True, "path": "/api/v2/parse/upload"}
        with pytest.raises(CassetteMiss) as info:
            upload(refusing(), other, "e" * 32)
    message = str(info.value)
    assert "POST /api/v2/parse/upload" in message and "closest recorded request: #1" in message
    assert "part 'file'" in message and "pdflatex-4-pages.pdf" in message and "minimal-document.pdf" in message
    assert "--record" in message
    assert "multipart/form-data" not in message and "content-type" not in message.lower()  # no header values


# -- scrubbing and the scan (C14 and canaries) ----------------------------------------------------
def test_c14_secret_headers_are_dropped_in_requests_and_responses_whatever_their_case(tmp_path: Path) -> None:
    path = tmp_path / "c14.yaml"

    def answer(request: Request) -> Response:
        return Response(200, json={"ok": 1}, headers=[
            ("Set-Cookie", "__cf_bm=cfcookie-canary-a"), ("set-cookie", "_cfuvid=cfcookie-canary-b"),
            ("OpenAI-Project", "proj_canary_c"), ("openai-organization", "org-canary-d"), ("x-request-id", "req_1")])

    with session(path, fresh=True):
        server(answer).post("/v1/embeddings", json={"model": "m", "input": ["x"]}, headers={
            "Cookie": "session=cookie-canary-e", "Authorization": f"Bearer {OPENAI_CANARY}",
            "X-Api-Key": LLX_CANARY, "api-key": "azure-canary-f", "OpenAI-Organization": "org-canary-g"})
    text = path.read_text()
    for value in ("cfcookie-canary", "proj_canary", "org-canary", "cookie-canary-e", OPENAI_CANARY, LLX_CANARY,
                  "azure-canary"):
        assert value not in text, value
    assert "req_1" in text  # ordinary headers stay


def test_keys_in_query_strings_bodies_and_webhook_urls_are_scrubbed_and_still_match(
    tmp_path: Path, documents_dir: Path,
) -> None:
    path = tmp_path / "q.yaml"
    hook = f"https://hooks.example.com/T0/{HOOK_TOKEN}?token={HOOK_TOKEN}"
    url = f"/v1/embeddings?api-key={OPENAI_CANARY}&key2=x"
    with session(path, fresh=True):
        server().post(url, json={"model": "m", "input": [f"my key is {LLX_CANARY}"]})
        upload(server(), documents_dir / "minimal-document.pdf", "a" * 32, webhook=hook)
    raw = path.read_bytes()
    text = raw.decode()
    blobs = b"".join(base64.b64decode("".join(b.split())) for b in _binary_blocks(text))
    for canary in (OPENAI_CANARY, LLX_CANARY, HOOK_TOKEN, "whsec_canarysecret1"):
        assert canary.encode() not in raw and canary.encode() not in blobs, canary
    assert "<SCRUBBED>" in text and b"<SCRUBBED>" in blobs
    with session(path, "none"):  # the live request scrubs to the same key
        assert refusing().post(url, json={"model": "m", "input": [f"my key is {LLX_CANARY}"]}).status_code == 200
        assert upload(refusing(), documents_dir / "minimal-document.pdf", "b" * 32, webhook=hook).status_code == 200


def _binary_blocks(text: str) -> list[str]:
    data = yaml.safe_load(text)
    out = []
    for item in data["interactions"]:
        body = item["request"]["body"]
        if isinstance(body, bytes):
            out.append(base64.b64encode(body).decode())
    return out


def test_scan_finds_keys_plain_in_base64_and_in_binary_blocks_with_masked_excerpts() -> None:
    binary = base64.encodebytes(b"--b\r\nname=config\r\n\r\n{\"key\": \"" + OPENAI_CANARY.encode() + b"\"}").decode()
    text = ("a: 1\nauthorization: Bearer abcdefghijklmnop123\n"
            f"b: {base64.b64encode(('xx' + LLX_CANARY).encode()).decode()}\nbody: !!binary |\n"
            + "".join(f"  {line}\n" for line in binary.splitlines()) + "c: sk-fake-test-0123456789abcdef\n")
    findings = scan_text(text, "x.yaml", [LLX_CANARY])
    assert [(f.line, f.kind) for f in findings] == [
        (2, "bearer token"), (3, "configured secret"), (4, "OpenAI key (in a !!binary body)")]
    assert all(OPENAI_CANARY not in str(f) and LLX_CANARY not in str(f) for f in findings)
    assert "sk-can…(30 chars)" in findings[2].excerpt
    assert scan_text("placeholder: sk-<SCRUBBED>\nfake: sk-fake-bench-not-a-real-key\n", "y.yaml") == []


def test_a_write_that_would_store_a_key_is_refused_and_the_old_cassette_stays(tmp_path: Path) -> None:
    """The scan is the last line: should scrubbing ever miss a key, nothing is written."""
    path = tmp_path / "s.yaml"
    path.write_text("version: 1\ninteractions: []\n")
    store = CassetteStore(secrets=[OPENAI_CANARY], metadata={"scenario": "x"})

    class Leaky:  # a scrubber that lets everything through
        def request(self, r: Any) -> Any:
            return r

        def response(self, r: Any) -> Any:
            return r

    store.scrubber = Leaky()  # type: ignore[assignment]
    request = VcrRequest("POST", "http://h/v1/embeddings", json.dumps({"input": [OPENAI_CANARY]}), {})
    response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b"{}"}}
    with pytest.raises(CassetteError) as info:
        store.save_cassette(path, {"requests": [request], "responses": [response]})
    assert "not written" in str(info.value) and f"{path}:" in str(info.value) and "sk-can…(30 chars)" in str(info.value)
    assert OPENAI_CANARY not in str(info.value)
    assert path.read_text() == "version: 1\ninteractions: []\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_every_write_path_scrubs_append_rerecord_and_pruning(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    with session(path, fresh=True):
        server().post("/v1/a", json={"k": OPENAI_CANARY})
    with session(path, "new_episodes"):  # replays /v1/a, appends /v1/b
        client = server()
        client.post("/v1/a", json={"k": OPENAI_CANARY})
        client.post("/v1/b", json={"k": LLX_CANARY}, headers={"cookie": "c=cookie-canary"})
    data = read_cassette(path)
    assert [i["request"]["uri"] for i in data.interactions] == ["http://127.0.0.1:9999/v1/a",
                                                                 "http://127.0.0.1:9999/v1/b"]
    # a cassette written by someone else, with a key in it, is re-saved clean by "all"
    raw = yaml.safe_load(path.read_text())
    raw["interactions"][0]["response"]["headers"]["Set-Cookie"] = ["cfcookie-canary"]
    raw["interactions"][0]["request"]["headers"]["authorization"] = [f"Bearer {OPENAI_CANARY}"]
    path.write_text(yaml.safe_dump(raw))
    with session(path, "all"):
        server().post("/v1/c", json={})
    with use_tape(tape(path, "all"), settings(), PriceTable.load()) as tape_:
        tape_.drop_unused_requests = True  # pruning: only what this session made survives
        server().post("/v1/b", json={"k": LLX_CANARY})
    text = path.read_text()
    for canary in (OPENAI_CANARY, LLX_CANARY, "cookie-canary", "cfcookie-canary"):
        assert canary not in text
    assert [i["request"]["uri"].rsplit("/", 1)[1] for i in read_cassette(path).interactions] == ["b"]


# -- loading ----------------------------------------------------------------------------------------
def test_a_python_object_tag_is_refused_naming_file_and_line_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text("version: 1\ninteractions:\n- request:\n    body: !!python/object/apply:os.system\n"
                    f"    - touch {marker}\n    method: GET\n    uri: http://x/\n"
                    "  response: {status: {code: 200}}\n")
    with pytest.raises(CassetteError) as info:
        read_cassette(path)
    assert f"{path}:4:" in str(info.value) and "python/object/apply" in str(info.value)
    with pytest.raises(CassetteError):
        with session(path, "none"):
            pass
    assert not marker.exists()


def test_a_custom_tag_and_a_broken_file_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "tag.yaml").write_text("version: 1\ninteractions: !custom []\n")
    (tmp_path / "bad.yaml").write_text("interactions: [\n")
    (tmp_path / "shape.yaml").write_text("version: 1\ninteractions:\n- {request: {uri: x}}\n")
    with pytest.raises(CassetteError, match=r"tag\.yaml:2: refused"):
        read_cassette(tmp_path / "tag.yaml")
    with pytest.raises(CassetteError, match=r"bad\.yaml:\d+: not valid YAML"):
        read_cassette(tmp_path / "bad.yaml")
    with pytest.raises(CassetteError, match="interaction 1 has no request"):
        read_cassette(tmp_path / "shape.yaml")


def test_gzip_bodies_are_stored_decoded_and_a_lying_header_is_dropped() -> None:
    body = b'{"a": 1}'
    decoded = decode_body({"headers": {"Content-Encoding": ["gzip"], "Content-Length": ["99"]},
                           "body": {"string": gzip.compress(body)}})
    assert decoded["body"]["string"] == body and decoded["headers"] == {"Content-Length": ["8"]}
    lying = decode_body({"headers": {"content-encoding": ["gzip"]}, "body": {"string": body}})  # CASES C01
    assert lying["body"]["string"] == body and lying["headers"] == {}


def test_gzip_responses_are_recorded_readable(tmp_path: Path) -> None:
    path = tmp_path / "gz.yaml"

    def answer(request: Request) -> Response:
        return Response(200, content=gzip.compress(b'{"z": "plain text"}'),
                        headers={"content-encoding": "gzip", "content-type": "application/json"})

    with session(path, fresh=True):
        assert server(answer).get("/v1/z").json() == {"z": "plain text"}
    text = path.read_text()
    assert "plain text" in text and "content-encoding" not in text.lower() and "!!binary" not in text
    with session(path, "none"):
        assert refusing().get("/v1/z").json() == {"z": "plain text"}


# -- replay rules -----------------------------------------------------------------------------------
def test_identical_requests_play_in_order_and_polls_repeat_their_last_answer(tmp_path: Path) -> None:
    path = tmp_path / "order.yaml"
    answers = iter([Response(429, json={"n": 1}), Response(200, json={"n": 2}),
                    Response(200, json={"status": "PENDING"}), Response(200, json={"status": "COMPLETED"})])
    with session(path, fresh=True):
        client = server(lambda r: next(answers))
        client.post("/v1/embeddings", json={"input": ["a"]})
        client.post("/v1/embeddings", json={"input": ["a"]})
        client.get("/api/v2/parse/job-1")
        client.get("/api/v2/parse/job-1")
    with session(path, "none"):
        client = refusing()
        assert [client.post("/v1/embeddings", json={"input": ["a"]}).status_code for _ in range(2)] == [429, 200]
        polls = [client.get("/api/v2/parse/job-1").json()["status"] for _ in range(4)]
        assert polls == ["PENDING", "COMPLETED", "COMPLETED", "COMPLETED"]
        with pytest.raises(CassetteMiss, match="recorded 2 time"):
            client.post("/v1/embeddings", json={"input": ["a"]})


def test_a_miss_names_the_changed_word_and_never_a_header_value(tmp_path: Path) -> None:
    path = tmp_path / "miss.yaml"
    with session(path, fresh=True):
        server().post("/v1/embeddings", json={"model": "m", "input": ["the quick brown fox", "jumps"]})
    with session(path, "none"):
        with pytest.raises(CassetteMiss) as info:
            refusing().post("/v1/embeddings", json={"model": "m", "input": ["the quick brown cat", "jumps"]},
                            headers={"x-secret-header": "header-value-canary"})
    message = str(info.value)
    assert "body field 'input'[0] differs at word 4: 'cat', recorded 'fox'" in message
    assert "header-value-canary" not in message and "tvdb run scenario.yaml --record" not in message
    assert "--record" in message
