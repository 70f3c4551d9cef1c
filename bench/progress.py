"""What the live progress display costs: the same mock run in a pseudo-terminal with the display, piped,
and with `--no-progress`, best of 3 interleaved runs each.

    python bench/progress.py [--docs 200]

Each run is a fresh `tvdb run` process with its own data dir (nothing reused), `TERM=xterm-256color`
and a 120x40 pseudo-terminal whose output is read (and thrown away) as fast as a terminal would.
Ends with `progress overhead = X.XX`: wall time with the display / wall time with `--no-progress`,
both in the pseudo-terminal (goal ≤ 1.05); the CPU-time ratio before it is steadier on a busy machine.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("harbour sensor tide gauge calibration barnacle window datum offset telemetry buoy anchor "
         "salinity drift maintenance schedule survey chart depth current").split()


def make_corpus(root: Path, docs: int) -> Path:
    """`docs` text documents of ~300 words each and a mock scenario over them."""
    (root / "docs").mkdir()
    for i in range(docs):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(300)]
        (root / "docs" / f"doc-{i:04d}.txt").write_text(f"Document {i}.\n" + " ".join(words) + "\n")
    scenario = root / "bench.yaml"
    scenario.write_text("name: progress-bench\nmode: mock\ndocuments: [docs/*.txt]\n")
    return scenario


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TVDB_")}
    env.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken_cache"))
    env.update(TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("NO_COLOR", None)
    return env


def run_in_pty(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of `args` with stdout and stderr on a pseudo-terminal that
    is read continuously."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    while True:
        try:
            if not os.read(master, 65536):
                break
        except OSError:  # EIO: the child closed the terminal
            break
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    os.close(master)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def run_piped(args: list[str], cwd: Path) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime


def display_cpu(docs: int, seconds: float) -> float:
    """CPU seconds the display itself spends on `docs` documents through every state over `seconds` of
    refreshes, measured in-process (a figure the machine's load does not blur)."""
    import dataclasses
    import io
    import threading

    from rich.console import Console

    from tvdb.cli.render import RichProgress
    from tvdb.domain import JobState
    from tvdb.pipeline.jobs import Job

    jobs = [Job(job_id=f"j{i}", run_id="r", ordinal=i, correlation_id="c", path=f"/docs/doc-{i:04d}.txt",
                state=JobState.PENDING) for i in range(docs)]
    states = [JobState.UPLOADED, JobState.PARSING, JobState.PARSED, JobState.CHUNKED, JobState.EMBEDDING,
              JobState.EMBEDDED, JobState.STORED, JobState.COMPLETE]
    start = time.process_time()
    bars = RichProgress(Console(file=io.StringIO(), force_terminal=True, width=120))
    bars.start(jobs)
    for state in states:
        for job in jobs:
            bars.job_changed(dataclasses.replace(job, state=state))
    threading.Event().wait(seconds)  # Rich's refresh thread draws meanwhile
    bars.stop()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scenario = make_corpus(root, opts.docs)
        results: dict[str, list[tuple[float, float]]] = {"display (pty)": [], "--no-progress (pty)": [],
                                                         "piped": []}
        n = 0

        def cmd(*extra: str) -> list[str]:
            nonlocal n
            n += 1
            return [sys.executable, "-m", "tvdb", "--data-dir", str(root / f"data-{n}"), "run", str(scenario), *extra]

        for _ in range(opts.rounds):  # interleaved, so a busy moment on the machine hits every variant
            results["display (pty)"].append(run_in_pty(cmd(), root))
            results["--no-progress (pty)"].append(run_in_pty(cmd("--no-progress"), root))
            results["piped"].append(run_piped(cmd(), root))
        print(f"{opts.docs} text documents, mock mode, best of {opts.rounds} interleaved runs")
        for name, runs in results.items():
            print(f"  {name:22} wall {min(w for w, _ in runs):6.2f} s  CPU {min(c for _, c in runs):6.2f} s"
                  f"   (wall of each: {', '.join(f'{w:.2f}' for w, _ in runs)})")
        shown, hidden = results["display (pty)"], results["--no-progress (pty)"]
        spent = display_cpu(opts.docs, min(w for w, _ in hidden))
        print(f"  the display itself: {spent:.3f} s CPU for {opts.docs} documents "
              f"({100 * spent / min(c for _, c in hidden):.1f} % of a run's CPU)")
        print(f"progress CPU overhead = {min(c for _, c in shown) / min(c for _, c in hidden):.2f}")
        print(f"progress overhead = {min(w for w, _ in shown) / min(w for w, _ in hidden):.2f}")


if __name__ == "__main__":
    main()
