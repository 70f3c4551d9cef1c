"""`tvdb doctor` for a healthy and for broken setups: each failing line names its fix, keys are masked,
the exit code says whether what the configured mode needs is there."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.openai_support import CANARY, emulator
from tvdb.cli.app import app, handle_errors
from tvdb.db import open_db

Cli = Callable[..., tuple[int, Any, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, **env: str) -> tuple[int, Any, str]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["tvdb", "doctor", *args])
        code = handle_errors(app)
        out, err = capsys.readouterr()
        return code, json.loads(out) if "--json" in args else out, err

    return run


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_healthy_hybrid_setup_is_ready(cli: Cli) -> None:
    with emulator() as server:
        code, report, err = cli("--json", "--mode", "hybrid", "--service", "parser=mock",
                                OPENAI_API_KEY=CANARY, OPENAI_BASE_URL=server.openai_base_url)
        assert server.count("GET /v1/models") == 1 and server.count() == 0  # probed, nothing spent
    assert code == 0 and report["ok"] is True and report["exit_code"] == 0, report
    checks = _by_name(report)
    assert [c["name"] for c in report["checks"]][:3] == ["config", "data dir", "database"]
    assert checks["config"]["detail"] == "valid (no tvdb.yaml: built-in defaults)"
    assert checks["database"]["detail"].endswith("does not exist yet: it is created on first use")
    assert checks["key OPENAI_API_KEY"] == {"name": "key OPENAI_API_KEY", "status": "ok", "detail": "set (sk-…aa11)",
                                            "fix": None, "latency_ms": None}
    assert checks["key LLAMA_CLOUD_API_KEY"]["status"] == "info"
    assert checks["tokenizer"]["status"] == "ok"
    embedder = checks["embedder (openai)"]
    assert embedder["status"] == "ok" and "mode hybrid (set by --mode): healthy, HTTP 200 in" in embedder["detail"]
    assert embedder["latency_ms"] is not None and embedder["latency_ms"] >= 0
    assert checks["parser (llamaparse)"]["detail"] == "mode mock (set by --service parser=mock): local, no network"
    assert checks["daily budget"]["status"] == "ok" and "$1.00 left of $1.00" in checks["daily budget"]["detail"]
    assert CANARY not in json.dumps(report) + err


def test_broken_setup_fails_each_line_with_its_fix(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the data dir should be")
    (tmp_path / "empty-cache").mkdir()
    code, report, _ = cli("--json", "--service", "parser=mock", TVDB_MODE="real",
                          TVDB_DATA_DIR=str(tmp_path / "blocked"), TIKTOKEN_CACHE_DIR=str(tmp_path / "empty-cache"))
    assert code == 1 and report["ok"] is False
    failed = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert set(failed) == {"data dir", "key OPENAI_API_KEY", "tokenizer", "embedder (openai)"}
    assert failed["data dir"]["fix"] == "point --data-dir or TVDB_DATA_DIR at a directory you can write"
    assert failed["key OPENAI_API_KEY"]["fix"].startswith("set OPENAI_API_KEY")
    assert "TIKTOKEN_CACHE_DIR" in failed["tokenizer"]["fix"]
    assert failed["embedder (openai)"]["detail"] == "mode real (set by TVDB_MODE): no OPENAI_API_KEY, so not probed"
    assert all(c["fix"] for c in failed.values())


def test_real_service_down_fails_and_hybrid_only_warns(cli: Cli) -> None:
    with emulator() as server:
        url = server.openai_base_url
    for mode, status in (("real", "fail"), ("hybrid", "warn")):
        code, report, _ = cli("--json", "--mode", mode, "--service", "parser=mock", OPENAI_API_KEY=CANARY,
                              OPENAI_BASE_URL=url)
        embedder = _by_name(report)["embedder (openai)"]
        assert embedder["status"] == status and "unhealthy, connection refused" in embedder["detail"]
        assert code == (1 if mode == "real" else 0)


def test_spent_budget_fails_a_real_setup(cli: Cli, tmp_path: Path) -> None:
    with emulator() as server:
        code, report, _ = cli("--json", "--mode", "real", "--service", "parser=mock", OPENAI_API_KEY=CANARY,
                              OPENAI_BASE_URL=server.openai_base_url, TVDB_DAILY_BUDGET_USD="0")
    budget = _by_name(report)["daily budget"]
    assert code == 1 and budget["status"] == "fail" and budget["detail"].endswith("real calls will be refused")
    assert "daily_budget_usd" in budget["fix"]


def test_invalid_config_is_exit_2_with_the_variable_named(cli: Cli) -> None:
    code, report, _ = cli("--json", TVDB_CHUNKING_MAX_TOKENS="many")
    assert code == 2 and report["checks"][0]["name"] == "config" and report["checks"][0]["status"] == "fail"
    assert "TVDB_CHUNKING_MAX_TOKENS" in report["checks"][0]["detail"]


def test_database_from_a_newer_tvdb_is_a_failure(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / ".tvdb" / "tvdb.db"
    open_db(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
                     "VALUES ('tvdb', 'm999_x', 'now')")
    code, report, _ = cli("--json")
    database = _by_name(report)["database"]
    assert code == 1 and database["status"] == "fail" and "m999_x" in database["detail"]


def test_table_output_shows_marks_and_the_verdict(cli: Cli) -> None:
    code, out, _ = cli()
    assert code == 0
    assert "tvdb doctor" in out and "ready  (exit code 0)" in out and "✓ │ tokenizer" in out


def test_a_config_files_problems_read_on_one_line_without_escapes(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "tvdb.yaml").write_text("daily_budget_usd: .inf\nlimits:\n  openai_requests_per_hour: true\n")
    code, out, _ = cli()
    assert code == 2 and "\\x0a" not in out  # a configuration error, as the run would say
    flat = " ".join(out.split())  # the table wraps the cell; its words stay in order
    assert "daily_budget_usd: must be a" in flat and "· (2 problems)" in flat
    code, report, _ = cli("--json")
    assert code == 2 and _by_name(report)["config"]["detail"].split("\n")[0].endswith(
        "tvdb.yaml:1: daily_budget_usd: must be a finite number of USD like 5 or 0.50, got inf")


def test_a_bad_budget_variable_is_named_with_what_it_must_be(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TVDB_DAILY_BUDGET_USD", "abc")
    code, report, _ = cli("--json")
    config = _by_name(report)["config"]
    assert (code, config["status"]) == (2, "fail")
    assert config["detail"] == ("TVDB_DAILY_BUDGET_USD=abc (environment): must be a number of USD like 5 or 0.50, "
                                "got 'abc'")
    assert config["fix"] == "set TVDB_DAILY_BUDGET_USD to a number of USD like 5 or 0.50, or unset it"


LEAK_CANARY = "sk-canary-DO-NOT-LEAK-1234567890abcdef"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_a_key_is_shown_as_the_readme_says_and_never_in_full(cli: Cli) -> None:
    """The README's words and doctor's output agree: first 3 and last 4 characters (`sk-…cdef`), and
    the key itself is in no output format (nor on stderr)."""
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert "masked: the first 3 and last 4 characters, `sk-…cdef`; a key under 19 characters shows only `…`" in readme
    code, report, err = cli("--json", "--mode", "mock", OPENAI_API_KEY=LEAK_CANARY, LLAMA_CLOUD_API_KEY="llx-short-key")
    assert code == 0
    checks = _by_name(report)
    assert checks["key OPENAI_API_KEY"]["detail"] == "set (sk-…cdef)"
    assert checks["key LLAMA_CLOUD_API_KEY"]["detail"] == "set (…)"
    assert LEAK_CANARY not in json.dumps(report) + err
    for fmt in ("plain", "table"):
        code, out, err = cli("--format", fmt, "--mode", "mock")
        assert code == 0
        line = next(line for line in out.splitlines() if "key OPENAI_API_KEY" in line)
        assert line.replace("│", " ").split()[-3:] == ["OPENAI_API_KEY", "set", "(sk-…cdef)"], line
        assert LEAK_CANARY not in out + err and "llx-short-key" not in out + err


@pytest.mark.parametrize("length", range(1, 60))
def test_the_mask_never_shows_more_than_7_characters_nor_leaves_fewer_than_12_hidden(length: int) -> None:
    """Checked on mask_key itself, not through the CLI's output streams (which also scrub the
    configured keys and would hide a leak here)."""
    from tvdb.services.modes import mask_key

    key = ("abcdefg-" + LEAK_CANARY * 2)[:length]
    masked = mask_key(key)
    shown = masked.replace("…", "")
    assert key not in masked and len(shown) <= 7
    assert shown == "" or length - len(shown) >= 12
    assert masked == (f"{key[:3]}…{key[-4:]}" if length >= 19 else "…")
