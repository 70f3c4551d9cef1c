"""Replaying a whole suite: `tvdb replay --all` serially, with `--jobs 2`, and `pytest -n 2`.

    python bench/replay_all.py        (no arguments; offline; a few minutes)

Generates 50 scenarios (1–4 short text documents each, local parsing, the real OpenAI client,
64-token chunks, a retrieval expectation) and records a cassette for each against the in-process
emulator (not timed). Then, each in a fresh data dir, as a user runs them (a new `tvdb` or `pytest`
process, wall time from start to exit):

- one scenario alone (`tvdb replay --all` of one file): the fixed cost of a process, paid once;
- `tvdb replay --all scenarios --jobs 1`: every scenario in one process, one after another;
- `tvdb replay --all scenarios --jobs 2`: two worker processes;
- `pytest -n 2 scenarios/` (tvdb's pytest plugin under pytest-xdist), when both are installed.

"N × one replay" is the floor a suite cannot beat without parallelism: the per-scenario time of
a warm process (the serial run's median scenario) times N, plus one process's fixed cost.
Ends with `replay --all scenarios/s = N` (of --jobs 2) and `speed-up with 2 workers = X.XX`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "tiktoken_cache"))

from tvdb.clock import FakeClock  # noqa: E402
from tvdb.config import resolve_settings  # noqa: E402
from tvdb.emulator.openai import OpenAIEmulator  # noqa: E402
from tvdb.emulator.server import EmulatorServer  # noqa: E402
from tvdb.recording.session import Tape  # noqa: E402
from tvdb.scenarios.loader import load_scenario  # noqa: E402
from tvdb.scenarios.replay import count_interactions  # noqa: E402
from tvdb.scenarios.runner import start_run  # noqa: E402

N = 50
KEY = "sk-fake-bench-not-a-real-key"
WORDS = ("tide gauge harbour sensor buoy salinity pier datum barnacle anchor telemetry battery "
         "solar mast radio firmware calibration alarm threshold reading station river lake estuary "
         "ice frost wind gust pressure humidity logger modem uplink backup archive export csv").split()
SCENARIO = """name: suite-{i:02}
mode: real
services: {{parser: mock, embedder: real}}
documents: [docs-{i:02}/*]
chunking: {{max_tokens: 64, overlap_tokens: 8}}
embedding: {{concurrency: 1}}
expectations:
  documents: [{{document: "*", status: complete, min_chunks: 1}}]
  retrieval:
    - {{query: "{query}", document: docs-{i:02}/doc-0.txt, top_k: 5}}
"""


def generate(root: Path) -> None:
    """`root/scenarios/suite-NN.yaml` with their documents, and `root/cassettes/suite-NN.yaml`."""
    rng = random.Random(13)
    scenarios = root / "scenarios"
    for i in range(N):
        docs = scenarios / f"docs-{i:02}"
        docs.mkdir(parents=True)
        first = ""
        for d in range(rng.randint(1, 4)):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                         for _ in range(rng.randint(4, 30))]
            first = first or sentences[0]
            (docs / f"doc-{d}.txt").write_text(f"Station {i} note {d}. " + " ".join(sentences) + "\n")
        query = first.rstrip(".").lower()  # doc-0's own first sentence: the retrieval expectation holds
        (scenarios / f"suite-{i:02}.yaml").write_text(SCENARIO.format(i=i, query=query))
    with EmulatorServer([OpenAIEmulator()]) as server:
        env = {"TVDB_DATA_DIR": str(root / ".record"), "OPENAI_API_KEY": KEY,
               "OPENAI_BASE_URL": server.openai_base_url}
        for i in range(N):
            loaded = load_scenario(scenarios / f"suite-{i:02}.yaml")
            settings = resolve_settings(cwd=root, environ=env, scenario=loaded.scenario.settings_layer(),
                                        scenario_doc=loaded.source)
            tape = Tape(path=root / "cassettes" / f"suite-{i:02}.yaml", record_mode="all", fresh=True,
                        scenario=loaded.scenario.name, scenario_path=f"../scenarios/suite-{i:02}.yaml")
            result = asyncio.run(start_run(loaded, settings, clock=FakeClock(), tape=tape))
            assert result.passed, [e for e in result.expectations if not e.passed]
    shutil.rmtree(root / ".record")


def timed(cmd: list[str], root: Path, tag: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {**os.environ, "TVDB_DATA_DIR": str(root / f".tvdb-{tag}")}
    env.pop("OPENAI_BASE_URL", None)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - started, done


def replay_all(root: Path, target: str, jobs: int, tag: str) -> tuple[float, dict[str, object]]:
    tvdb = [sys.executable, "-m", "tvdb"]
    elapsed, done = timed([*tvdb, "replay", "--all", target, "--jobs", str(jobs), "--json"], root, tag)
    if done.returncode != 0:
        raise SystemExit(f"replay --all failed ({done.returncode}):\n{done.stderr[-2000:]}")
    doc = json.loads(done.stdout)
    return elapsed, doc


def pytest_n2(root: Path) -> float | str:
    if not any(ep.name == "tvdb" for ep in entry_points(group="pytest11")):
        return "tvdb's pytest plugin is not installed"
    try:
        import xdist  # noqa: F401
    except ImportError:
        return "pytest-xdist is not installed"
    elapsed, done = timed([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "scenarios/"],
                          root, "pytest")
    if done.returncode != 0:
        raise SystemExit(f"pytest -n 2 failed ({done.returncode}):\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable, "
          f"load average {os.getloadavg()[0]:.1f}; {N} generated scenarios; wall time of each command, "
          "process start to exit")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate(root)
        interactions = sum(count_interactions(p) for p in (root / "cassettes").glob("*.yaml"))
        print(f"generated and recorded in {time.perf_counter() - started:.1f} s: {interactions} interactions "
              f"in {N} cassettes (not timed below)")
        one, _ = replay_all(root, "scenarios/suite-00.yaml", 1, "one")
        serial, doc = replay_all(root, "scenarios", 1, "serial")
        runs = doc["runs"]
        assert isinstance(runs, list) and len(runs) == N and all(r["outcome"] == "passed" for r in runs)
        per = statistics.median(float(r["duration_s"]) for r in runs[1:])  # the first pays the warm-up
        floor = one + (N - 1) * per
        parallel, doc2 = replay_all(root, "scenarios", 2, "jobs2")
        assert all(r["outcome"] == "passed" for r in doc2["runs"])  # type: ignore[union-attr]
        print(f"one scenario alone (process included)    {one:7.2f} s")
        print(f"one more scenario in a warm process      {per * 1000:7.0f} ms (median)")
        print(f"N × one replay (one + {N - 1} × warm)         {floor:7.2f} s")
        print(f"replay --all, serial (--jobs 1)          {serial:7.2f} s  = {serial / floor:.2f} × N × one replay")
        print(f"replay --all --jobs 2                    {parallel:7.2f} s")
        plugin = pytest_n2(root)
        if isinstance(plugin, str):
            print(f"pytest -n 2 scenarios/                   skipped: {plugin}")
        else:
            print(f"pytest -n 2 scenarios/                   {plugin:7.2f} s  (speed-up {serial / plugin:.2f} "
                  "over the serial replay)")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        print(f"replay --all scenarios/s = {N / parallel:.1f}")
        print(f"speed-up with 2 workers = {serial / parallel:.2f}")


if __name__ == "__main__":
    main()
