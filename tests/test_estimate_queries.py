"""`tvdb run --estimate` prices the retrieval expectations' query embeddings: a real run embeds each
query (stage `query`, OpenAI), so the forecast counts them, and against budgets when the embedder is real."""

from __future__ import annotations

from pathlib import Path

from tvdb.clock import FakeClock
from tvdb.config import resolve_settings
from tvdb.scenarios.estimate import estimate
from tvdb.scenarios.loader import load_scenario
from tvdb.tokens import count_tokens

QUERIES = ("where is the tide sensor", "how do I clean barnacles off the window")


def _estimate(tmp_path: Path, extra: str = "") -> dict[str, object]:
    (tmp_path / "a.md").write_text("# title\n" + "tide sensor reading " * 50)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmode: real\nservices: {parser: mock}\ndocuments: [a.md]\n" + extra
                    + "expectations:\n  retrieval:\n"
                    + "".join(f"    - {{query: {q}, document: a.md}}\n" for q in QUERIES))
    loaded = load_scenario(path)
    settings = resolve_settings(cwd=tmp_path, environ={"TVDB_DATA_DIR": str(tmp_path / ".tvdb")},
                                scenario=loaded.scenario.settings_layer(), dotenv=False)
    return estimate(loaded, settings, FakeClock()).as_json()


def test_the_estimate_prices_each_retrieval_query_as_a_real_embedding_request(tmp_path: Path) -> None:
    tokens = count_tokens(list(QUERIES))
    assert tokens == [5, 9]
    est = _estimate(tmp_path)
    assert est["requests"] == {"parse": 1, "embed": 1, "query": 2}
    by_stage = est["by_stage_usd"]
    assert isinstance(by_stage, dict)
    assert by_stage["query"] == 14 * 0.02 / 1_000_000  # 14 tokens at $0.02 per 1M
    assert est["would_cost_usd"] == by_stage["parse"] + by_stage["embed"] + by_stage["query"]
    # the embedder is real: the queries count against the budgets as the run's own spend
    assert est["real_spend_usd"] == by_stage["embed"] + by_stage["query"]


def test_a_scenarios_own_search_hook_sends_no_query_embeddings(tmp_path: Path) -> None:
    (tmp_path / "hooks.py").write_text("def run(document):\n    return None\n\n"
                                       "def query(text, top_k):\n    return []\n")
    est = _estimate(tmp_path, "pipeline: hooks:run\nsearch: hooks:query\npython_path: ['.']\n")
    assert est["requests"] == {"parse": 1, "embed": 1, "query": 0}
