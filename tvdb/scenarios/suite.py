"""`tvdb replay --all`: find the scenarios, pick this shard's, replay them in worker processes, add up.

Shards: every machine of a CI matrix discovers the same files and computes the same assignment,
so each scenario lands in exactly one shard without coordination. The assignment is keyed by the
scenario's path relative to the folder searched (posix form, the same on every checkout) and
balanced by recorded interactions: longest first, each to the least-loaded shard (ties: the lower
shard), weight = 1 + interactions (a scenario costs something even with few calls).

Concurrency: a replay patches its process (vcrpy, the network block), so each runs in a worker
process of its own (forked from a clean fork server, or spawned); all share the configured data
dir — SQLite in WAL mode with a busy timeout takes concurrent writers, and replayed calls make no
budget reservation, so no budget can refuse (or be exceeded by) a replay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvdb.bounds import MAX_COUNT
from tvdb.errors import EXIT_BUDGET, EXIT_EXPECTATION_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, ConfigError
from tvdb.redaction import redact
from tvdb.scenarios.replay import ReplayEnv, ScenarioOutcome, count_interactions, replay_scenario


@dataclass(frozen=True)
class Planned:
    """A discovered scenario: `key` is its path relative to the searched folder (posix), the
    shard key; `weight` is 1 + the interactions its cassette holds (0 without one)."""

    path: Path
    key: str
    weight: int


def _name_of(path: Path) -> str | None:
    from tvdb.yamlfile import load_yaml

    try:
        data = load_yaml(path).data
    except Exception:  # noqa: BLE001  (a broken file weighs 1; its replay reports the problem)
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def plan(root: Path, env: ReplayEnv) -> list[Planned]:
    """The scenarios under `root` with their shard keys and weights, in key order.

    Raises ConfigError when `root` does not exist or holds no scenario file."""
    from tvdb.scenarios.discover import discover_scenarios

    try:
        paths = discover_scenarios(root)
    except FileNotFoundError:
        raise ConfigError(f"{root}: no such folder; pass the folder that holds your scenario files "
                          "(`tvdb replay --all scenarios/`)") from None
    if not paths:
        raise ConfigError(f"{root}: no scenario files (YAML with top-level `name` and `documents`) found under it")
    cassettes = Path(env.settings().recording.cassette_dir)
    cassettes = cassettes if cassettes.is_absolute() else env.cwd / cassettes
    base = root if root.is_dir() else root.parent
    out = []
    for path in paths:
        name = _name_of(path)
        interactions = count_interactions(cassettes / f"{name}.yaml") if name else 0
        out.append(Planned(path=path, key=path.relative_to(base).as_posix(), weight=1 + interactions))
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/4"` → (2, 4): shard 2 of 4, counted from 1. Raises ConfigError naming the flag."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n or n > MAX_COUNT:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ConfigError(f"--shard {shown!r}: expected I/N with 1 ≤ I ≤ N ≤ {MAX_COUNT:,}, e.g. --shard 1/4 "
                          "(the first of four)")
    return i, n


def assign_shards(planned: Sequence[Planned], count: int) -> list[list[Planned]]:
    """Split `planned` into `count` shards (each in key order): heaviest first to the lightest shard."""
    shards: list[list[Planned]] = [[] for _ in range(count)]
    loads = [0] * count
    for item in sorted(planned, key=lambda p: (-p.weight, p.key)):
        target = min(range(count), key=lambda s: (loads[s], s))
        shards[target].append(item)
        loads[target] += item.weight
    return [sorted(s, key=lambda p: p.key) for s in shards]


def select_shard(planned: Sequence[Planned], shard: tuple[int, int] | None) -> list[Planned]:
    """The scenarios of shard (i, n). Only the first len(planned) shards can hold any: splitting into that
    many gives them the same scenarios (an item goes to the lowest-numbered lightest shard, and one of
    those is always empty) without building a million empty shards for `--shard 1/1000000`."""
    if shard is None:
        return list(planned)
    index, count = shard
    used = min(count, len(planned))
    return assign_shards(planned, used)[index - 1] if index <= used else []


def default_jobs() -> int:
    """The CPUs this process may use (the affinity mask in a container), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


# imported once by the fork server, so each worker starts with them loaded instead of importing
# them itself: a replay imports the SDKs, vcrpy and the parsers lazily, seconds on a busy CI machine
# (a module that is not installed is skipped by the fork server); importing them does no I/O
PRELOAD = ["tvdb.scenarios.replay", "tvdb.scenarios.runner", "tvdb.recording.session", "tvdb.recording.cassette",
           "tvdb.services.factory", "tvdb.services.remote.openai_embedder", "tvdb.pipeline.runner",
           "openai", "vcr", "numpy", "tiktoken", "pypdf", "bs4", "docx", "httpx2", "sqlite_utils"]


def _pool_context() -> Any:
    """`forkserver` where there is one (a clean single-threaded server forks the workers, with the
    modules above loaded), else `spawn`; never a plain fork of this (possibly threaded) process."""
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:  # Windows
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


@contextmanager
def _cwd_off_the_fork_servers_path() -> Iterator[None]:
    """While the block runs, PYTHONSAFEPATH=1 in this process's environment, unless the tvdb in use is
    the one in the working directory (a checkout run as `python -m tvdb`).

    The fork server starts as `python -c …`, which puts the working directory first on `sys.path`
    (and multiprocessing does not replace it): a `tvdb/` folder there would be imported by the
    workers instead of the installed tvdb, and would break or subvert every replay. PYTHONSAFEPATH
    (Python 3.11) leaves the working directory off; it is read once, when the server starts."""
    import tvdb

    here = Path(tvdb.__file__).resolve().parent.parent == Path.cwd().resolve()
    saved = os.environ.get("PYTHONSAFEPATH")
    if not here:
        os.environ["PYTHONSAFEPATH"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONSAFEPATH", None)
        else:
            os.environ["PYTHONSAFEPATH"] = saved


def _init_worker(environ: Mapping[str, str]) -> None:
    """A forked worker has the fork server's environment: give it the command's (tiktoken's cache,
    NO_COLOR, the SDKs' variables) so a worker behaves as the in-process replay would."""
    os.environ.clear()
    os.environ.update(environ)


def _replay_in_worker(path: Path, env: ReplayEnv, require_cassette: bool) -> ScenarioOutcome:
    return replay_scenario(path, env, require_cassette=require_cassette)


def run_suite(planned: Sequence[Planned], env: ReplayEnv, *, jobs: int, require_cassettes: bool = False,
              on_done: Callable[[ScenarioOutcome], None] = lambda o: None) -> list[ScenarioOutcome]:
    """Replay every planned scenario, `jobs` at a time, and return the outcomes in key order.

    `jobs` 1 replays in this process, one after another; more starts that many worker processes
    (never more than there are scenarios), heaviest scenario first. `on_done` sees each outcome as
    it ends (progress lines). A worker that dies is that scenario's `error`, not the suite's end."""
    from tvdb.db import open_storage

    if planned:  # create or migrate the ledger once, before workers open it side by side
        open_storage(env.settings()).close()
    order = {p.path: i for i, p in enumerate(planned)}
    outcomes: list[ScenarioOutcome] = []
    workers = max(1, min(jobs, len(planned)))
    if workers == 1:
        for item in planned:
            outcomes.append(replay_scenario(item.path, env, require_cassette=require_cassettes))
            on_done(outcomes[-1])
        return outcomes
    from concurrent.futures import Future, ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker,
                               initargs=(dict(os.environ),))
    try:
        with _cwd_off_the_fork_servers_path():  # the workers start while the jobs are submitted
            futures: dict[Future[ScenarioOutcome], Planned] = {
                pool.submit(_replay_in_worker, item.path, env, require_cassettes): item
                for item in sorted(planned, key=lambda p: (-p.weight, p.key))}
        for future in as_completed(futures):
            item = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001  (a worker killed by the OS, an unpicklable result)
                outcome = ScenarioOutcome(path=item.path, name=None, status="error", internal=True,
                                          message=redact(f"internal error: the worker replaying it failed: "
                                                         f"{type(exc).__name__}: {exc}"))  # a key in a bug's text
            outcomes.append(outcome)
            on_done(outcome)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return sorted(outcomes, key=lambda o: order[o.path])


# -- totals and the exit code, computed from the JSON entries so merged shards add up the same way --

def _avoided(entry: Mapping[str, Any]) -> float | None:
    replay = entry.get("replay")
    if not isinstance(replay, Mapping):
        return 0.0
    value = replay.get("avoided_usd")
    return float(value) if isinstance(value, int | float) else None


def _replayed(entry: Mapping[str, Any]) -> int:
    replay = entry.get("replay")
    return int(replay.get("replayed_calls") or 0) if isinstance(replay, Mapping) else 0


def totals(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`{"scenarios", "passed", "failed", "skipped", "errors", "expectations", "expectations_failed",
    "replayed_calls", "avoided_usd" (None when a replayed call had no price), "duration_s",
    "exit_code"}` over `tvdb replay --all --json` run entries."""
    rows = list(entries)
    count = {k: sum(1 for e in rows if e.get("outcome") == k) for k in ("passed", "failed", "skipped", "error")}
    avoided = [_avoided(e) for e in rows]
    expectations = [x for e in rows for x in e.get("expectations") or []]
    return {
        "scenarios": len(rows), "passed": count["passed"], "failed": count["failed"], "skipped": count["skipped"],
        "errors": count["error"], "expectations": len(expectations),
        "expectations_failed": sum(1 for x in expectations if not x.get("passed")),
        "replayed_calls": sum(_replayed(e) for e in rows),
        "avoided_usd": None if any(a is None for a in avoided) else round(sum(a for a in avoided if a), 9),
        "duration_s": round(sum(float(e.get("duration_s") or 0) for e in rows), 3),
        "exit_code": suite_exit_code(rows),
    }


def suite_exit_code(entries: Iterable[Mapping[str, Any]]) -> int:
    """70 a bug in tvdb · 2 a scenario or cassette could not be used · 3 a budget refused · 1 a
    scenario failed · 0 every scenario passed or was skipped."""
    codes = {int(e.get("exit_code") or 0) for e in entries}
    for code in (EXIT_INTERNAL, EXIT_USAGE, EXIT_BUDGET):
        if code in codes:
            return code
    return EXIT_EXPECTATION_FAILED if codes - {EXIT_OK} else EXIT_OK


def suite_json(outcomes: Sequence[ScenarioOutcome], *, shard: tuple[int, int] | None, jobs: int,
               wall_s: float) -> dict[str, Any]:
    """The `tvdb replay --all --json` object: `{"runs": [...], "totals": {...}, "shard", "jobs"}`."""
    runs = [o.as_json() for o in outcomes]
    return {"runs": runs, "totals": {**totals(runs), "wall_s": round(wall_s, 3)},
            "shard": f"{shard[0]}/{shard[1]}" if shard else None, "jobs": jobs}


def timed(fn: Callable[[], list[ScenarioOutcome]]) -> tuple[list[ScenarioOutcome], float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started
