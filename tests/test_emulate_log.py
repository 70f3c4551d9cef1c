"""`tvdb emulate` logs one line per answered request (method, path, status, latency, inputs and tokens),
never a key or the query string; `--quiet` silences it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx2

CANARY_KEY = "sk-canary-emulatelog-0123456789abcdef"
CANARY_QUERY = "sk-canary-emulatequery-0123456789abcdef"


def _start(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tvdb", "emulate", "--port", "0", *flags], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for _ in range(20):
        line = proc.stdout.readline()
        if line.startswith("export OPENAI_BASE_URL="):
            return proc, line.split("=", 1)[1].strip()
    proc.kill()
    raise AssertionError("the emulator printed no OPENAI_BASE_URL")


def _embed(base_url: str) -> None:
    answer = httpx2.post(f"{base_url}/embeddings", params={"api-key": CANARY_QUERY},
                         headers={"authorization": f"Bearer {CANARY_KEY}"},
                         json={"model": "text-embedding-3-small", "input": ["one two three", "four five"]}, timeout=30)
    assert answer.status_code == 200


def test_each_request_is_logged_without_secrets(tmp_path: Path) -> None:
    proc, base_url = _start(tmp_path)
    try:
        _embed(base_url)
        assert proc.stdout is not None
        line = ""
        for _ in range(10):  # past the start-up banner
            line = proc.stdout.readline()
            if line.startswith("POST "):
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    assert line.startswith("POST /v1/embeddings 200 ")
    assert " ms · 2 inputs, 5 tokens" in line
    assert "canary" not in line + rest and "api-key" not in line + rest


def test_quiet_logs_nothing_per_request(tmp_path: Path) -> None:
    proc, base_url = _start(tmp_path, "--quiet")
    try:
        _embed(base_url)
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    assert "POST /v1/embeddings" not in rest


def test_a_single_input_and_token_read_in_the_singular() -> None:
    from tvdb.emulator.server import _detail

    one = b'{"data": [{"object": "embedding"}], "usage": {"prompt_tokens": 1, "total_tokens": 1}}'
    many = (b'{"data": [' + b", ".join([b'{"object": "embedding"}'] * 2) + b'], '
            b'"usage": {"prompt_tokens": 1234, "total_tokens": 1234}}')
    assert _detail("/v1/embeddings", 200, one) == "1 input, 1 token"
    assert _detail("/v1/embeddings", 200, many) == "2 inputs, 1,234 tokens"


def test_the_banner_counts_one_fault_in_the_singular(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("faults:\n  - {service: openai, kind: status, status: 503, nth: 99}\n")
    proc = subprocess.Popen([sys.executable, "-m", "tvdb", "emulate", "--port", "0", "--config", str(config)],
                            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        banner = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert banner.rstrip().endswith("(no rate limits, latency 0 ms, 1 fault)")
