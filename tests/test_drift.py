"""`tvdb cassette drift` against the emulator on loopback: unchanged (no drift, exit 0) and
deliberately changed (a renamed field, other vectors, a new header), spend reserved and ledgered,
--max-usd refusing before anything is sent, the --json shape, and a canary key nowhere."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.openai_support import CANARY
from tvdb.emulator.base import EmulatorRequest, Reply
from tvdb.emulator.openai import OpenAIEmulator
from tvdb.emulator.server import EmulatorServer
from tvdb.recording import compare

TEXTS = ["clean barnacles off the sensor window", "the field guide, page two", "calibrate the depth gauge",
         "replace the o-ring", "log the salinity every hour"]


class Changed:
    """The emulator with its answers changed after the fact: what a new API version would look like."""

    prefix = "/v1"
    name = "openai"

    def __init__(self, inner: OpenAIEmulator, change: Callable[[Reply], Reply]) -> None:
        self.inner, self.change = inner, change

    def handle(self, request: EmulatorRequest) -> Reply:
        return self.change(self.inner.handle(request))


def _rename_usage(reply: Reply) -> Reply:
    body = json.loads(reply.body)
    body["usage"]["input_tokens"] = body["usage"].pop("prompt_tokens")
    return dataclasses.replace(reply, body=json.dumps(body).encode())


def _new_header(reply: Reply) -> Reply:
    return dataclasses.replace(reply, headers={**reply.headers, "openai-deprecation": "2027-01-01",
                                               "x-ratelimit-remaining-requests": "99"})


def _other_model(texts: Sequence[str], dimensions: int) -> Any:
    """Vectors of another model: the mock embedder's, of different texts (a new vector seed)."""
    from tvdb.services.local.embedder import HashEmbedder

    return HashEmbedder().embed_texts([f"v2 {i} " + t[::-1] for i, t in enumerate(texts)], dimensions)


@contextmanager
def serving(service: Any) -> Iterator[EmulatorServer]:
    with EmulatorServer([service]) as server:
        yield server


def record(server: EmulatorServer, path: Path, *, fmt: str = "base64") -> Path:
    """A cassette as `tvdb run --record` writes it (vcrpy's format), of real answers from `server`,
    plus a LlamaParse job poll and a recorded 429 (both skipped by the drift check)."""
    from tvdb.http import Client

    interactions = []
    with Client() as client:
        for text in TEXTS:
            body = json.dumps({"input": [text], "model": "text-embedding-3-small", "encoding_format": fmt})
            answer = client.post(f"{server.openai_base_url}/embeddings", content=body,
                                 headers={"authorization": "Bearer sk-recording", "content-type": "application/json"})
            interactions.append({
                "request": {"method": "POST", "uri": "https://api.openai.com/v1/embeddings", "body": body,
                            "headers": {"content-type": ["application/json"]}},
                "response": {"status": {"code": answer.status_code, "message": "OK"},
                             "headers": {k: [v] for k, v in answer.headers.items()},
                             "body": {"string": answer.text}}})
    interactions.append({
        "request": {"method": "GET", "uri": "https://api.cloud.llamaindex.ai/api/v2/parse/job-1", "body": None,
                    "headers": {}},
        "response": {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "{}"}}})
    interactions.append({**interactions[0], "response": {**interactions[0]["response"],
                                                         "status": {"code": 429, "message": "Too Many Requests"}}})
    path.write_text(yaml.safe_dump({"version": 1, "interactions": interactions}))
    return path


@dataclasses.dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def drift(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """`tvdb cassette drift ARGS` in-process, through the one error-to-exit-code mapping."""
    from tvdb.cli.app import app, handle_errors

    def run(server: EmulatorServer | str | None, *args: str, key: str | None = CANARY, **env: str) -> Result:
        with monkeypatch.context() as m:
            m.setenv("TVDB_DATA_DIR", str(tmp_path / ".tvdb"))
            if key is not None:
                m.setenv("OPENAI_API_KEY", key)
            if server is not None:
                m.setenv("OPENAI_BASE_URL", server if isinstance(server, str) else server.openai_base_url)
            for name, value in env.items():
                m.setenv(name, value)
            capsys.readouterr()
            code = handle_errors(app, ["cassette", "drift", *args])
            out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


def ledger(tmp_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(tmp_path / ".tvdb" / "tvdb.db")
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM usage ORDER BY id")]
    db.close()
    return rows


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    with serving(OpenAIEmulator()) as server:
        return record(server, tmp_path / "nightly.yaml")


def test_an_unchanged_emulator_shows_no_drift_and_the_spend_is_ledgered(
        tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), "--sample", "3", "--max-usd", "0.05", "--json")
        sent = server.count()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sent == 3
    assert report["totals"] == {"interactions": 5, "ok": 3, "drifted": 0, "skipped": 2, "error": 0}
    ok = [i for i in report["interactions"] if i["result"] == "ok"]
    assert [i["status"] for i in ok] == ["200 → 200"] * 3 and all(i["cosine"] > 0.99999 for i in ok)
    skipped = {i["index"]: i["reasons"][0] for i in report["interactions"] if i["result"] == "skipped"}
    assert skipped[6].startswith("LlamaParse job request") and skipped[7].startswith("recorded a transient 429")
    assert report["cassettes"] == [{"path": str(cassette), "interactions": 7, "sampled": 3, "skipped": 2,
                                    "scenario": None}]
    rows = ledger(tmp_path)
    assert len(rows) == 3 and {r["provenance"] for r in rows} == {"drift canary"}
    assert {r["run_id"] for r in rows} == {report["run_id"]} and report["run_id"].startswith("drift-")
    assert {r["stage"] for r in rows} == {"drift"} and {r["implementation"] for r in rows} == {"real"}
    # billed what the emulator reported, and each reservation settled
    recorded = yaml.safe_load(cassette.read_text())["interactions"]
    by_index = {i["index"]: i for i in ok}
    tokens = sorted(json.loads(recorded[i - 1]["response"]["body"]["string"])["usage"]["prompt_tokens"]
                    for i in by_index)
    assert sorted(r["units"] for r in rows) == tokens
    assert report["spent_usd"] == pytest.approx(sum(r["cost_nusd"] for r in rows) / 1e9)
    assert report["spent_usd"] == pytest.approx(sum(tokens) * 0.02 / 1e6)


def test_the_sample_is_stable_and_the_seed_moves_it(tmp_path: Path, cassette: Path) -> None:
    from tvdb.recording.drift import sample_of
    from tvdb.recording.store import read_cassette

    loaded = read_cassette(cassette)
    picked = [[p.index for p in sample_of(loaded, 2, seed) if p.skip is None] for seed in (0, 0, 1, 2, 3)]
    assert picked[0] == picked[1] and len(picked[0]) == 2
    assert any(p != picked[0] for p in picked[2:])


@pytest.mark.parametrize(("change", "embed", "expected"), [
    (_rename_usage, None, ["field added: usage.input_tokens", "field removed: usage.prompt_tokens"]),
    (_new_header, None, ["header added: openai-deprecation"]),
    (None, _other_model, ["data[0].embedding cosine"]),
])
def test_a_changed_emulator_is_reported_with_the_reason(tmp_path: Path, cassette: Path, change: Any, embed: Any,
                                                        expected: list[str], drift: Any) -> None:
    inner = OpenAIEmulator(embed_texts=embed) if embed else OpenAIEmulator()
    with serving(Changed(inner, change) if change else inner) as server:
        result = drift(server, str(cassette), "--sample", "2", "--json")
    assert result.exit_code == 1, result.output
    replayed = [i for i in json.loads(result.stdout)["interactions"] if i["result"] != "skipped"]
    assert len(replayed) == 2 and {i["result"] for i in replayed} == {"drifted"}
    for item in replayed:
        for reason in expected:
            assert any(r.startswith(reason) for r in item["reasons"]), item["reasons"]
    if embed:
        assert all(i["cosine"] < 0.9 for i in replayed)
    if change is _new_header:  # a rate-limit counter is volatile: never drift
        assert not any("x-ratelimit" in r for i in replayed for r in i["reasons"])


def test_the_table_names_cassette_request_result_and_reason(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(Changed(OpenAIEmulator(), _new_header)) as server:
        result = drift(server, str(cassette), "--sample", "1", "--format", "plain")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    drifted = [line for line in lines if "drifted" in line and "POST /v1/embeddings" in line]
    assert len(drifted) == 1 and "header added: openai-deprecation" in drifted[0] and "200 → 200" in drifted[0]
    assert lines[-1].startswith("0 ok, 1 drifted, 0 failed, 2 skipped; spent $")


def test_max_usd_too_small_refuses_before_any_request(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), "--max-usd", "0.0000001")
        sent = server.count()
    assert result.exit_code == 3, result.output
    assert sent == 0
    assert "drift check (--max-usd) budget" in result.output
    assert not (tmp_path / ".tvdb" / "tvdb.db").exists() or ledger(tmp_path) == []


def test_the_daily_budget_applies_too(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), TVDB_DAILY_BUDGET_USD="0")
        sent = server.count()
    assert result.exit_code == 3, result.output
    assert sent == 0 and "daily" in result.stderr


def test_a_missing_key_names_the_variable_and_the_canary_key_is_nowhere(
        tmp_path: Path, cassette: Path, drift: Any) -> None:
    missing = drift(None, str(cassette), key=None)
    assert missing.exit_code == 2 and "OPENAI_API_KEY" in missing.output
    with serving(Changed(OpenAIEmulator(), _rename_usage)) as server:
        outputs = [drift(server, str(cassette), *extra) for extra in ((), ("--json",))]
        seen = [r.headers.get("authorization") for r in server.requests]
    assert seen and all(s == f"Bearer {CANARY}" for s in seen)  # sent, and only to the service
    for result in outputs:
        assert result.exit_code == 1 and CANARY not in result.output
    for path in (tmp_path / ".tvdb").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_an_unreachable_service_is_an_error_not_ok(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        url = server.openai_base_url
    result = drift(url, str(cassette), "--sample", "1", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    failed = [i for i in report["interactions"] if i["result"] == "error"]
    assert len(failed) == 1 and failed[0]["reasons"][0].startswith("openai: cannot connect")
    assert [r["status"] for r in ledger(tmp_path)] == ["error"]


def test_a_hostile_cassette_is_refused_before_anything_is_sent(tmp_path: Path, cassette: Path, drift: Any) -> None:
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text("interactions: !!python/object/apply:os.system ['echo owned']\n")
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), str(hostile))
        sent = server.count()
    assert result.exit_code == 2 and sent == 0
    assert "hostile.yaml:1: refused" in result.output


def test_float_lists_and_base64_decode_to_the_same_vector(tmp_path: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        floats = record(server, tmp_path / "floats.yaml", fmt="float")
        result = drift(server, str(floats), "--sample", "5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["ok"] == 5
    assert compare.vector("AACAPwAAAEA=") == [1.0, 2.0]


def test_schema_paths_and_types() -> None:
    old = {"data": [{"embedding": [0.1, 0.2], "index": 0}], "usage": {"prompt_tokens": 2, "total_tokens": 2}}
    new = {"data": [{"embedding": "AACAPw==", "index": 0, "object": "embedding"}], "usage": {"prompt_tokens": "2"}}
    assert compare.schema_reasons(old, new) == [
        "field added: data[].object", "field removed: data[].embedding[]", "field removed: usage.total_tokens",
        "type changed: data[].embedding: array → string", "type changed: usage.prompt_tokens: integer → string"]
    assert compare.usage_reasons(old, {"usage": {"prompt_tokens": 3, "total_tokens": 2}}) == [
        "usage.prompt_tokens 2 → 3"]
    assert compare.header_reasons({"date": "x", "openai-model": "m", "content-type": "application/json"},
                                  {"date": "y", "x-request-id": "r", "content-type": "text/html"}) == [
        "header removed: openai-model", "content-type application/json → text/html"]


def test_the_nightly_workflow_command_runs_as_written(tmp_path: Path, cassette: Path, drift: Any) -> None:
    """drift.yml's `tvdb cassette drift "$@" --sample 3 --max-usd 0.05`, with "$@" the cassettes."""
    import shlex

    workflow = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "drift.yml"
    line = next(x.strip() for x in workflow.read_text().splitlines() if x.strip().startswith("tvdb cassette drift"))
    words = shlex.split(line)[3:]
    args = [str(cassette) if w == "$@" else w for w in words]
    with serving(OpenAIEmulator()) as server:
        result = drift(server, *args)
    assert result.exit_code == 0, result.output
    assert "3 ok, 0 drifted, 0 failed, 2 skipped" in result.stdout


def test_llamaparse_and_unpriced_interactions_are_skipped_with_a_reason(cassettes_dir: Path, drift: Any) -> None:
    from tvdb.recording.drift import SKIP_JOB, SKIP_UPLOAD, sample_of
    from tvdb.recording.store import read_cassette

    parse = sample_of(read_cassette(cassettes_dir / "openllmetry__test_llamaparse_load_data_instrumentation.yaml"),
                      3, 0)
    assert [p.skip for p in parse] == [SKIP_UPLOAD, SKIP_JOB, SKIP_JOB, SKIP_JOB] * 2
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassettes_dir / "otel-python-contrib__test_embeddings_model_not_found.yaml"),
                       "--json")
        sent = server.count()
    assert result.exit_code == 0 and sent == 0
    [item] = json.loads(result.stdout)["interactions"]
    assert item["result"] == "skipped" and item["reasons"] == [
        "no price known for model 'non-existent-embedding-model': not sent (an unknown price is never $0)"]


def test_without_max_usd_the_run_budget_caps_the_check(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), TVDB_BUDGET_MAX_USD="0.0000001")
        sent = server.count()
    assert result.exit_code == 3, result.output
    assert sent == 0 and "drift check (budget.max_usd) budget" in result.stderr


def test_a_cassette_named_twice_is_checked_once(tmp_path: Path, cassette: Path, drift: Any) -> None:
    with serving(OpenAIEmulator()) as server:
        result = drift(server, str(cassette), str(cassette.parent / "." / cassette.name), "--sample", "2", "--json")
        sent = server.count()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sent == 2 and len(report["cassettes"]) == 1
    assert report["totals"] == {"interactions": 4, "ok": 2, "drifted": 0, "skipped": 2, "error": 0}


def test_cassette_help_lists_drift(drift: Any) -> None:
    from tvdb.cli.lazy import BY_NAME

    assert BY_NAME["cassette"].short_help == "Cassettes: check for keys, list, show, drift."
    result = drift(None, "--help", key=None)
    assert result.exit_code == 0 and "--max-usd" in result.stdout and "--min-cosine" in result.stdout


def test_a_budget_refusing_mid_way_keeps_what_was_compared(tmp_path: Path, cassette: Path, drift: Any) -> None:
    # each request costs 100-140 nano-dollars: the daily budget lets exactly one through
    with serving(Changed(OpenAIEmulator(), _new_header)) as server:
        result = drift(server, str(cassette), "--json", TVDB_DAILY_BUDGET_USD="0.00000015")
        sent = server.count()
    assert result.exit_code == 3, result.output
    assert sent == 1
    report = json.loads(result.stdout)  # one object: the report, not an error object besides it
    assert report["totals"] == {"interactions": 5, "ok": 0, "drifted": 1, "skipped": 4, "error": 0}
    refused = [i for i in report["interactions"] if i["reasons"][0].startswith("not sent: daily")]
    assert len(refused) == 2 and report["refused"].startswith("daily")
    assert "error:" in result.stderr and "daily" in result.stderr
    assert len(ledger(tmp_path)) == 1
