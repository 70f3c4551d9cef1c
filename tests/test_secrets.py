"""Money and secrets: a canary API key never reaches the database, the data dir, the output, a log,
an error message or a stored run — in a real-mode run against the emulator, with faults and --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.openai_support import CANARY, emulator

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "scenarios" / "real-embeddings-emulated.yaml"
NOT_A_KEY = "canary-without-sk-prefix-4b1d9e7c0a"

pytestmark = pytest.mark.slow


def _run(cwd: Path, base_url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TVDB_DATA_DIR": str(cwd / ".tvdb"), "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "tvdb", "--debug", "run", str(REAL), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _leaks(root: Path, secret: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_shipped_real_scenario_passes_against_the_emulator_without_leaking_the_key(tmp_path: Path) -> None:
    with emulator() as server:
        done = _run(tmp_path, server.openai_base_url, CANARY, "--json")
        sent = server.count()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["passed"] and result["mode"] == "real"
    assert result["cost_usd"] > 0  # real calls are money, even when the emulator answers them
    # the scenario's 429 is injected client-side (a transport wrapper), so the emulator sees the retry
    # and the retrieval query; the ledger sees all three attempts
    assert sent == 2
    assert result["requests"] == {"embed/real": 2, "parse/mock": 4, "query/real": 1}
    assert CANARY not in done.stdout + done.stderr
    assert _leaks(tmp_path, CANARY) == []


def test_rejected_key_fails_cleanly_and_is_never_echoed(tmp_path: Path) -> None:
    with emulator() as server:
        done = _run(tmp_path, server.openai_base_url, NOT_A_KEY, "--json")
        sent = server.count()
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert {d["error_code"] for d in result["documents"]} == {"service_error"}
    assert sent == 1  # a 401 is permanent: one request, no retries, nothing else sent
    assert NOT_A_KEY not in done.stdout + done.stderr
    assert _leaks(tmp_path, NOT_A_KEY) == []


def test_missing_key_names_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["TVDB_DATA_DIR"] = str(tmp_path / ".tvdb")
    done = subprocess.run([sys.executable, "-m", "tvdb", "run", str(REAL)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr
