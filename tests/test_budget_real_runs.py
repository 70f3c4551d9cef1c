"""The budget promise end to end: 8 real `tvdb run` processes in real mode, against the emulator,
released together by a barrier, share one daily budget that only fits two of them; 20 repetitions.

Settled spend never exceeds the budget, some runs are refused (exit 3), the emulator saw exactly the
admitted requests (no refused call reached HTTP), and no process saw "database is locked".
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.openai_support import CANARY, emulator

REPO = Path(__file__).resolve().parents[1]
PROCESSES = 8
REPETITIONS = 20
BUDGET_NUSD = 100_000  # $0.0001 — two requests of 2,000 tokens ($0.00004 each) fit, the third does not

pytestmark = pytest.mark.slow


def _scenarios(tmp: Path) -> None:
    for i in range(PROCESSES):
        # different words per process, so no run can reuse another's vectors; ~2,000 tokens each
        (tmp / f"doc{i}.txt").write_text(" ".join(f"sensor{i}x{j} reading" for j in range(1000)))
        (tmp / f"s{i}.yaml").write_text(
            f"name: race{i}\nmode: real\nservices: {{parser: mock, embedder: real}}\ndocuments: [doc{i}.txt]\n"
            "chunking: {max_tokens: 8000, overlap_tokens: 0}\n"
        )


def _wait_for(paths: Path, pattern: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(paths.glob(pattern))) < n:
        assert time.monotonic() < deadline, f"workers did not reach {pattern}"
        time.sleep(0.005)


def test_parallel_real_runs_never_exceed_the_daily_budget(tmp_path: Path) -> None:
    _scenarios(tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    with emulator() as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": CANARY,
               "TVDB_DAILY_BUDGET_USD": str(BUDGET_NUSD / 1e9)}
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.run_after_barrier", str(barrier), str(i), str(REPETITIONS), "--",
                 "run", str(tmp_path / f"s{i}.yaml"), "--json", "--no-progress",
                 "--data-dir", str(tmp_path / "round{round}")],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(PROCESSES)
        ]
        try:
            refused_total = 0
            for r in range(REPETITIONS):
                _wait_for(barrier, f"ready-{r}-*", PROCESSES)
                before = server.count()
                (barrier / f"go-{r}").touch()
                _wait_for(barrier, f"done-{r}-*", PROCESSES)
                sent = server.count() - before
                results = [(barrier / f"done-{r}-{i}").read_text() for i in range(PROCESSES)]
                codes = [int(text.split("\n", 1)[0]) for text in results]
                for text in results:
                    assert "database is locked" not in text
                    assert CANARY not in text
                assert set(codes) <= {0, 3}, results
                with sqlite3.connect(tmp_path / f"round{r}" / "tvdb.db") as conn:
                    spent, real_rows = conn.execute(
                        "SELECT COALESCE(SUM(cost_nusd), 0), COUNT(*) FROM usage WHERE implementation = 'real'"
                    ).fetchone()
                    active = conn.execute("SELECT COUNT(*) FROM reservations WHERE status = 'active'").fetchone()[0]
                assert spent <= BUDGET_NUSD
                assert sent == real_rows  # every HTTP request is in the ledger; refused calls never reached HTTP
                assert codes.count(0) == sent  # one embedding request per admitted run
                assert active == 0
                assert codes.count(3) >= 1
                refused_total += codes.count(3)
        finally:
            for w in workers:
                try:
                    w.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
    assert all(w.returncode == 0 for w in workers), [w.stderr for w in workers]
    assert refused_total >= REPETITIONS
