"""What the live progress display costs: the same mock run in a pseudo-terminal with the display, piped,
and with `--no-progress`, best of 3 interleaved runs each.

    python bench/progress.py [--docs 200]

Each run is a fresh `tvdb run` process with its own data dir (nothing reused), `TERM=xterm-256color`
and a 120x40 pseudo-terminal whose output is read (and thrown away) as fast as a terminal would.
Ends with `progress overhead = X.XX`: wall time with the display / wall time with `--no-progress`,
both in the pseudo-terminal (goal ≤ 1.05).
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


def run_in_pty(args: list[str], cwd: Path) -> float:
    """Wall time of `args` with stdout and stderr on a pseudo-terminal that is read continuously."""
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
    code = proc.wait()
    elapsed = time.perf_counter() - start
    os.close(master)
    if code != 0:
        raise SystemExit(f"{' '.join(args)} exited {code}")
    return elapsed


def run_piped(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scenario = make_corpus(root, opts.docs)
        results: dict[str, list[float]] = {"display (pty)": [], "--no-progress (pty)": [], "piped": []}
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
        for name, times in results.items():
            print(f"  {name:22} {min(times):6.2f} s   (all: {', '.join(f'{t:.2f}' for t in times)})")
        ratio = min(results["display (pty)"]) / min(results["--no-progress (pty)"])
        print(f"progress overhead = {ratio:.2f}")


if __name__ == "__main__":
    main()
