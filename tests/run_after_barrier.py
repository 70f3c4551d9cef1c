"""A worker process that runs `tvdb run` (the real CLI code path, in this process) once per round,
each round released by a file barrier so that all workers start spending together.

Usage: python -m tests.run_after_barrier BARRIER_DIR NAME ROUNDS -- <tvdb args with {round}>
Before round r it writes BARRIER_DIR/ready-r-NAME and waits for BARRIER_DIR/go-r; afterwards it writes
BARRIER_DIR/done-r-NAME holding the exit code, then the command's stdout and stderr.
Paying Python's start-up once per worker keeps 20 rounds of 8 processes affordable on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path


def _wait(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit(f"barrier timeout waiting for {path.name}")
        time.sleep(0.002)


def main() -> None:
    barrier, name, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    template = sys.argv[sys.argv.index("--") + 1:]
    from tvdb.cli.app import app, handle_errors  # import before the barrier: start-up is not the race

    for r in range(rounds):
        (barrier / f"ready-{r}-{name}").touch()
        _wait(barrier / f"go-{r}")
        out, err = io.StringIO(), io.StringIO()
        sys.argv = ["tvdb", *(a.replace("{round}", str(r)) for a in template)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = handle_errors(app)
        tmp = barrier / f".done-{r}-{name}"
        tmp.write_text(f"{code}\n{out.getvalue()}\n{err.getvalue()}")
        tmp.rename(barrier / f"done-{r}-{name}")  # atomic: the test never reads a half-written file


if __name__ == "__main__":
    main()
