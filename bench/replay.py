"""Replay speed: tvdb's indexed matching vs vcrpy's own `body` matcher, on the same cassettes.

    python bench/replay.py        (no arguments; offline; a few minutes, most of it vcrpy's)

Builds cassettes of 1,000 and 2,000 OpenAI embedding interactions (one input each, 1536-dimension
base64 vectors, the layout vcrpy records) and replays every request through the real embedding
client (`OpenAIEmbedder`, official SDK, httpx2) with HTTP answered from the cassette:
- tvdb: `tvdb.recording.session.use_tape` (vcrpy's interception, tvdb's canonical keys, dict lookup);
- vcrpy 9: `VCR(match_on=[method, scheme, host, port, path, query, body])`, on 500 and 1,000 only
  (it compares every request with every recorded one, re-parsing both bodies: 2,000 takes minutes).
Timed from the first request to the last answer; process start-up, building the cassette and
loading it (YAML parsing, which both do once) are excluded and the load time is printed apart.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "tiktoken_cache"))

import numpy as np  # noqa: E402
import vcr  # noqa: E402
from vcr.request import Request  # noqa: E402

from tvdb.config import Settings  # noqa: E402
from tvdb.domain import EmbeddingRequest, Implementation  # noqa: E402
from tvdb.ledger.prices import PriceTable  # noqa: E402
from tvdb.recording.session import Tape, use_tape  # noqa: E402
from tvdb.recording.store import serialize, write_atomically  # noqa: E402
from tvdb.services.remote.openai_embedder import build_openai_embedder  # noqa: E402

MODEL = "text-embedding-3-small"
URL = "https://api.openai.com/v1/embeddings"
KEY = "sk-fake-bench-not-a-real-key"
SIZES = (1_000, 2_000)
VCRPY_SIZES = (500, 1_000)


def text(i: int) -> str:
    return f"chunk {i}: the tide sensor on pier {i % 97} reported a level of {i * 7 % 400} centimetres"


def build(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    requests, responses = [], []
    for i in range(n):
        body = f'{{"model":"{MODEL}","input":["{text(i)}"],"encoding_format":"base64"}}'
        requests.append(Request("POST", URL, body, {"content-type": "application/json"}))
        vector = rng.standard_normal(1536).astype("<f4")
        vector /= np.linalg.norm(vector)
        payload = ('{"object":"list","data":[{"object":"embedding","index":0,"embedding":"'
                   + base64.b64encode(vector.tobytes()).decode()
                   + f'"}}],"model":"{MODEL}","usage":{{"prompt_tokens":20,"total_tokens":20}}}}')
        responses.append({"status": {"code": 200, "message": "OK"},
                          "headers": {"content-type": ["application/json"], "x-request-id": [f"req_{i:032x}"]},
                          "body": {"string": payload}})
    write_atomically(path, serialize(requests, responses, {}))


async def replay(embedder: Any, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        result = await embedder.embed(EmbeddingRequest((text(i),), MODEL, 1536, 20))
        assert result.vectors.shape == (1, 1536)
    return time.perf_counter() - start


async def tvdb_replay(path: Path, n: int) -> tuple[float, float]:
    settings = Settings.model_validate({"mode": "real", "openai_api_key": KEY})
    embedder = build_openai_embedder(settings, implementation=Implementation.REPLAY)
    loaded = time.perf_counter()
    try:
        with use_tape(Tape(path=path, record_mode="none"), settings, PriceTable.load()) as tape:
            load_s = time.perf_counter() - loaded
            elapsed = await replay(embedder, n)
            assert tape.play_count == n
    finally:
        await embedder.aclose()
    return elapsed, load_s


async def floor(path: Path, n: int) -> float:
    """The client alone: the same answers from an in-memory transport, no cassette machinery."""
    import json

    from tvdb.http import MockTransport, Response
    from tvdb.recording.store import read_cassette

    answers = {json.loads(i["request"]["body"])["input"][0]: i["response"]["body"]["string"]
               for i in read_cassette(path).interactions}

    async def answer(request: Any) -> Response:
        return Response(200, content=answers[json.loads(request.content)["input"][0]],
                        headers={"content-type": "application/json"})

    settings = Settings.model_validate({"mode": "real", "openai_api_key": KEY})
    embedder = build_openai_embedder(settings, transport=MockTransport(answer))  # type: ignore[arg-type]
    try:
        return await replay(embedder, n)
    finally:
        await embedder.aclose()


async def vcrpy_replay(path: Path, n: int) -> tuple[float, float]:
    settings = Settings.model_validate({"mode": "real", "openai_api_key": KEY})
    embedder = build_openai_embedder(settings)
    recorder = vcr.VCR(record_mode="none", match_on=["method", "scheme", "host", "port", "path", "query", "body"])
    loaded = time.perf_counter()
    try:
        with recorder.use_cassette(str(path)) as tape:
            load_s = time.perf_counter() - loaded
            elapsed = await replay(embedder, n)
            assert tape.play_count == n
    finally:
        await embedder.aclose()
    return elapsed, load_s


def main() -> None:
    print(f"python {sys.version.split()[0]}, vcrpy {vcr.__version__}, {os.cpu_count()} CPUs; "
          "timed from the first request to the last answer (cassette loading shown apart)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for n in sorted(set(SIZES) | set(VCRPY_SIZES)):
            paths[n] = Path(tmp) / f"embeddings-{n}.yaml"
            build(paths[n], n)
        times: dict[int, float] = {}
        for n in SIZES:
            best = min((asyncio.run(tvdb_replay(paths[n], n)) for _ in range(3)), key=lambda r: r[0])
            times[n] = best[0]
            print(f"tvdb  {n:>5} interactions: {best[0]:7.2f} s  ({n / best[0]:,.0f}/s; cassette load {best[1]:.2f} s)")
        floors = {n: min(asyncio.run(floor(paths[n], n)) for _ in range(3)) for n in SIZES}
        for n in SIZES:
            print(f"floor {n:>5} interactions: {floors[n]:7.2f} s  (the client alone, answers from memory; "
                  f"tvdb adds {(times[n] - floors[n]) / n * 1e3:.2f} ms per request)")
        vcr_times = {}
        for n in VCRPY_SIZES:
            elapsed, load_s = asyncio.run(vcrpy_replay(paths[n], n))
            vcr_times[n] = elapsed
            print(f"vcrpy {n:>5} interactions: {elapsed:7.2f} s  ({n / elapsed:,.0f}/s; cassette load {load_s:.2f} s)")
    big = max(SIZES)
    print(f"vcrpy body matcher time(1000)/time(500) = {vcr_times[1000] / vcr_times[500]:.2f}")
    print(f"tvdb vs vcrpy on 1,000 interactions: {vcr_times[1000] / times[1000]:.0f}x faster")
    print(f"tvdb replay interactions/s = {big / times[big]:.0f}")
    print(f"tvdb replay time(2000)/time(1000) = {times[2000] / times[1000]:.2f}")


if __name__ == "__main__":
    main()
