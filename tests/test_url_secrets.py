"""Secrets in URLs and provider messages (canary tokens): a token in OPENAI_BASE_URL's query, a webhook
URL's path token and a 401's echo of a key fragment never reach the output, the `--debug` log, the
database or anything else under the data dir — while the request still carries them to the provider."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import Cli, in_process_cli
from tests.openai_support import CANARY, emulator, settings_for
from tests.receivers import Receiver
from tvdb.domain import EmbeddingRequest
from tvdb.errors import PermanentServiceError
from tvdb.redaction import redact, redact_url
from tvdb.services.remote.openai_embedder import build_openai_embedder

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "scenarios" / "real-embeddings-emulated.yaml"
URL_CANARY = "sk-canary-url-5d1e8f20b7c94a63"
PATH_CANARY = "c4n4ry9f3e2d1c0b8a7z6y5x"
FRAGMENT_KEY = "canary-key-0000-4b1d9e7c0aZQ"  # not sk-: the emulator answers 401 and echoes "can****0aZQ"


def _leaks(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("url, shown", [
    ("http://127.0.0.1:8089/v1?api-key=sk-canary-7f3a9c1e5b2d8046aa11", "http://127.0.0.1:8089/v1?api-key=***"),
    ("https://gw.example/v1?api-version=2024-02-01&key=short", "https://gw.example/v1?api-version=2024-02-01&key=***"),
    ("https://gw.example/v1?x=Zx81aa7QpL0mnBv2Rt", "https://gw.example/v1?x=***"),  # token-like value, any name
    ("https://gw.example/v1?access_token=&debug=1", "https://gw.example/v1?access_token=&debug=1"),
    ("https://hooks.slack.com/services/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",
     "https://hooks.slack.com/services/T0001ABCD/B0002EFGH/***"),
    ("https://discord.com/api/webhooks/1234567890/abcDEF-ghi_123456789jklMNOpqr",
     "https://discord.com/api/webhooks/1234567890/***"),
    ("https://example.com/hooks/550e8400-e29b-41d4-a716-446655440000", "https://example.com/hooks/***"),
    ("https://example.com/hook/sk-canary-7f3a9c1e5b2d8046aa11/x", "https://example.com/hook/***/x"),
    ("http://user:pass@h.example/x#token", "http://***@h.example/x#***"),
    ("https://api.openai.com/v1", "https://api.openai.com/v1"),
    ("https://x.openai.azure.com/openai/deployments/text-embedding-3-small",
     "https://x.openai.azure.com/openai/deployments/text-embedding-3-small"),
    ("http://[::1/x", "***"),
])
def test_redact_url_hides_tokens_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("text, clean", [
    ("Incorrect API key provided: sk-proj-****************************8X9A. You can find your API key at "
     "https://platform.openai.com/account/api-keys.",
     "Incorrect API key provided: sk-***. You can find your API key at https://platform.openai.com/account/api-keys."),
    ("Incorrect API key provided: can*********************0aZQ.", "Incorrect API key provided: ***."),
    ("key sk-canary-7f3a9c1e5b2d8046aa11 and llx-0123456789abcdef", "key sk-*** and llx-***"),
    ("cannot reach http://h/v1?api-key=zzz (ConnectError)", "cannot reach http://h/v1?api-key=*** (ConnectError)"),
    ("nothing secret here: 3 * 4 = 12", "nothing secret here: 3 * 4 = 12"),
])
def test_redact_scrubs_keys_fragments_and_urls_in_text(text: str, clean: str) -> None:
    assert redact(text) == clean


def _run(cwd: Path, base_url: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "tvdb", "--debug", "run", str(REAL), "--json", "--no-progress"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_token_in_the_base_url_query_is_sent_but_never_printed_logged_or_stored(tmp_path: Path) -> None:
    with emulator() as server:
        done = _run(tmp_path, f"{server.openai_base_url}?api-key={URL_CANARY}", CANARY)
        seen = list(server.requests)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["passed"]
    # the gateway's query goes on every request, to the right path
    assert {(r.path, r.query) for r in seen} == {("/v1/embeddings", f"api-key={URL_CANARY}")}
    assert "HTTP Request: POST" in done.stderr  # the --debug log was on, and shows the URL redacted
    assert "/v1/embeddings?api-key=***" in done.stderr
    for secret in (URL_CANARY, CANARY):
        assert secret not in done.stdout + done.stderr
        assert _leaks(tmp_path, secret) == []
    with sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db") as db:
        provenance = {row[0] for row in db.execute(
            "SELECT provenance FROM usage WHERE implementation = 'real' AND stage = 'embed'")}
    assert provenance == {f"set by scenario: services.embedder (OpenAI API at {server.openai_base_url}?api-key=***)"}


@pytest.mark.slow
def test_a_401_stores_no_fragment_of_the_key(tmp_path: Path) -> None:
    with emulator() as server:
        done = _run(tmp_path, server.openai_base_url, FRAGMENT_KEY)
    assert done.returncode == 1, done.stderr[-3000:]
    with sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db") as db:
        errors = {row[0] for row in db.execute("SELECT error_message FROM jobs WHERE error_message IS NOT NULL")}
    assert errors and all("Incorrect API key provided: ***." in e for e in errors), errors
    for fragment in (FRAGMENT_KEY, FRAGMENT_KEY[-4:], FRAGMENT_KEY[:3] + "*"):
        assert fragment not in done.stdout + done.stderr
        assert _leaks(tmp_path, fragment) == []


def test_a_real_format_401_echo_of_an_sk_key_is_scrubbed() -> None:
    echo = f"Incorrect API key provided: sk-canar{'*' * 20}{CANARY[-4:]}."
    fault = {"service": "openai", "kind": "status", "status": 401, "code": "invalid_api_key", "message": echo}
    with emulator(faults=[fault]) as server:
        embedder = build_openai_embedder(settings_for(server, key=CANARY))

        async def go() -> None:
            try:
                await embedder.embed(EmbeddingRequest(("tide",), "text-embedding-3-small", 1536, 1))
            finally:
                await embedder.aclose()

        with pytest.raises(PermanentServiceError) as info:
            asyncio.run(go())
    assert str(info.value) == "openai HTTP 401 invalid_api_key: Incorrect API key provided: sk-***."
    assert CANARY[-4:] not in str(info.value)




@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))

    return in_process_cli(monkeypatch, capsys)


@pytest.mark.parametrize("suffix, shown", [(f"/hooks/{PATH_CANARY}", "/hooks/***"),
                                           (f"/hooks?token={PATH_CANARY}", "/hooks?token=***")])
def test_alerts_test_hides_the_webhook_urls_token(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  suffix: str, shown: str) -> None:
    receiver = Receiver([200])
    try:
        monkeypatch.setenv("TVDB_ALERTS_WEBHOOK_URL", receiver.url + suffix)
        code, out, err = cli("alerts", "test")
    finally:
        receiver.close()
    assert code == 0, out + err
    assert f"webhook {receiver.url}{shown}: delivered after 1 attempt(s)" in out
    assert receiver.requests[0][0] == suffix  # delivered to the real URL
    assert PATH_CANARY not in out + err
    assert _leaks(tmp_path, PATH_CANARY) == []


def test_a_failed_webhook_delivery_reason_hides_the_token(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from tests.receivers import free_port

    monkeypatch.setenv("TVDB_ALERTS_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/hooks/{PATH_CANARY}")
    monkeypatch.setenv("TVDB_ALERTS_DELIVERY_ATTEMPTS", "1")
    code, out, err = cli("alerts", "test")
    assert code == 1 and "failed" in out
    assert PATH_CANARY not in out + err
    assert _leaks(tmp_path, PATH_CANARY) == []


def test_a_parse_webhook_urls_token_is_never_stored_with_the_run(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from tvdb.scenarios.runner import ingestion_settings, restore_settings
    from tvdb.settings import Settings

    hook = f"https://hooks.example/parse/{PATH_CANARY}"
    monkeypatch.setenv("TVDB_PARSE_WEBHOOK_URL", hook)
    code, out, err = cli("run", str(REPO / "scenarios" / "quickstart.yaml"), "--no-progress")
    assert code == 0, out + err
    assert _leaks(tmp_path, PATH_CANARY) == []  # tvdb.db and its WAL
    stored = ingestion_settings(Settings.model_validate({"parse": {"webhook_url": hook, "tier": "agentic"}}))
    assert "webhook_url" not in stored["parse"] and stored["parse"]["tier"] == "agentic"
    current = Settings.model_validate({"parse": {"webhook_url": "https://hooks.example/parse/now"}})
    restored = restore_settings(stored, current)  # resume delivers to the current receiver
    assert (restored.parse.webhook_url, restored.parse.tier) == ("https://hooks.example/parse/now", "agentic")


def _older_history() -> object:
    from tvdb.schema import HISTORY
    from tvdb.storage.migrations import History

    # the history as it was before the scrub step (and every step after it)
    return History(HISTORY.name, HISTORY.steps[:HISTORY.names.index("m023_spec_without_webhook_url")])


_OLD_SPEC = json.dumps({"parse": {"tier": "agentic", "webhook_url": f"https://hooks.example/p/{PATH_CANARY}"},
                        "chunking": {"max_tokens": 512}})


def test_an_older_databases_stored_webhook_token_is_scrubbed_on_upgrade(tmp_path: Path) -> None:
    """Runs stored before a run stopped saving `parse.webhook_url` lose it when the database is next
    opened; the rest of their settings stay, and the freed bytes are zeroed, not left in the file."""
    from tvdb.db import open_db
    from tvdb.storage.sqlite import open_sqlite

    path = tmp_path / "tvdb.db"
    old = open_sqlite(path, _older_history())  # type: ignore[arg-type]
    old.execute("INSERT INTO runs (run_id, spec_json) VALUES ('r-old', ?), ('r-none', NULL), ('r-bad', 'x')",
                [_OLD_SPEC])
    old.close()
    db = open_db(path)
    rows = {r["run_id"]: r["spec_json"] for r in db.query("SELECT run_id, spec_json FROM runs")}
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert json.loads(rows["r-old"]) == {"parse": {"tier": "agentic"}, "chunking": {"max_tokens": 512}}
    assert (rows["r-none"], rows["r-bad"]) == (None, "x")
    assert _leaks(tmp_path, PATH_CANARY) == []


def test_the_webhook_token_scrub_runs_on_postgresql_too(pg_empty_url: str) -> None:
    from tvdb.db import open_pg
    from tvdb.storage.postgres import open_postgres

    old = open_postgres(pg_empty_url, _older_history())  # type: ignore[arg-type]
    old.execute("INSERT INTO runs (run_id, spec_json) VALUES ('r-old', ?), ('r-none', NULL)", [_OLD_SPEC])
    old.close()
    db = open_pg(pg_empty_url)
    rows = {r["run_id"]: r["spec_json"] for r in db.query("SELECT run_id, spec_json FROM runs")}
    db.close()
    assert json.loads(rows["r-old"]) == {"parse": {"tier": "agentic"}, "chunking": {"max_tokens": 512}}
    assert rows["r-none"] is None


@pytest.mark.parametrize(("uri", "scrubbed"), [
    ("https://h/v1/embeddings?api-key=sk-unconfigured-0123456789&x=1", "https://h/v1/embeddings?api-key=<SCRUBBED>&x=1"),
    ("https://h/v1/embeddings?token=abc123", "https://h/v1/embeddings?token=<SCRUBBED>"),
])
def test_a_cassette_query_secret_becomes_one_placeholder_however_often_scrubbed(uri: str, scrubbed: str) -> None:
    from tvdb.recording.scrub import Scrubber

    once = Scrubber().text(uri)
    assert once == scrubbed and Scrubber().text(once) == scrubbed
