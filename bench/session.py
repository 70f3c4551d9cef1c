"""What a tvdb session adds per request: the openai SDK embedding through `tvdb.session(mode="mock")`
(interception → router → ledger row → fault layer → in-process emulator) versus the same SDK on the
emulator's own in-process transport (`tvdb.emulator.app().transport()`, no tvdb in between: the floor).

    python bench/session.py [--requests 200] [--inputs 8]

Both sides answer with the same emulator code and vectors; the difference is the session's routing,
metering and its SQLite usage row per request. Interleaved rounds, best of 3 each. Ends with
`session overhead = X.XX` (session time / floor time) and the per-request milliseconds of each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared" / "tiktoken_cache"))


def texts(n: int, inputs: int) -> list[list[str]]:
    return [[f"request {i} input {j}: harbour tide gauge calibration and buoy telemetry" for j in range(inputs)]
            for i in range(n)]


def floor(batches: list[list[str]]) -> float:
    import httpx2
    import openai

    import tvdb

    client = openai.OpenAI(api_key="sk-bench", base_url="http://emulator/v1", max_retries=0,
                           http_client=httpx2.Client(transport=tvdb.emulator.app().transport()))
    started = time.perf_counter()
    for batch in batches:
        client.embeddings.create(model="text-embedding-3-small", input=batch)
    return time.perf_counter() - started


def session(batches: list[list[str]]) -> float:
    import openai

    import tvdb

    with tempfile.TemporaryDirectory() as tmp, tvdb.session(mode="mock", cwd=tmp, environ={}) as s:
        client = openai.OpenAI(api_key="sk-bench", max_retries=0)
        started = time.perf_counter()
        for batch in batches:
            client.embeddings.create(model="text-embedding-3-small", input=batch)
        elapsed = time.perf_counter() - started
        assert s.summary().requests == len(batches)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=8)
    args = parser.parse_args()
    batches = texts(args.requests, args.inputs)
    floor(batches[:5]), session(batches[:5])  # warm: imports, tokenizer, word features
    best = {"floor": float("inf"), "session": float("inf")}
    for _ in range(3):
        best["floor"] = min(best["floor"], floor(batches))
        best["session"] = min(best["session"], session(batches))
    for name, seconds in best.items():
        print(f"{name:8} {seconds:7.3f} s  {seconds / args.requests * 1000:6.2f} ms/request")
    print(f"session overhead = {best['session'] / best['floor']:.2f}")


if __name__ == "__main__":
    main()
