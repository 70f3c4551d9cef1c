"""`--shard I/N`: every scenario in exactly one shard, stable and balanced; `tvdb replay merge`
puts the shards' JSON and JUnit back together as one run would have reported them."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli_support import in_process_cli
from tests.suite_support import build_project, valid_junit
from tvdb.errors import ConfigError
from tvdb.scenarios.suite import Planned, assign_shards, parse_shard, select_shard

WEIGHTS = st.lists(st.integers(min_value=1, max_value=500), min_size=0, max_size=60)


def _planned(weights: list[int]) -> list[Planned]:
    return [Planned(path=Path(f"s/{i:03}.yaml"), key=f"s/{i:03}.yaml", weight=w) for i, w in enumerate(weights)]


@given(WEIGHTS, st.integers(min_value=1, max_value=8))
def test_every_scenario_lands_in_exactly_one_shard(weights: list[int], n: int) -> None:
    planned = _planned(weights)
    shards = [select_shard(planned, (i, n)) for i in range(1, n + 1)]
    keys = [p.key for shard in shards for p in shard]
    assert sorted(keys) == [p.key for p in planned] and len(keys) == len(set(keys))
    for shard in shards:
        assert [p.key for p in shard] == sorted(p.key for p in shard)  # each shard replays in path order
    loads = [sum(p.weight for p in shard) for shard in shards]
    if weights:  # greedy longest-first: no shard exceeds another by more than the heaviest scenario
        assert max(loads) - min(loads) <= max(weights)


@given(WEIGHTS, st.integers(min_value=1, max_value=8), st.randoms(use_true_random=False))
def test_the_assignment_does_not_depend_on_discovery_order(weights: list[int], n: int, rnd: random.Random) -> None:
    planned = _planned(weights)
    shuffled = list(planned)
    rnd.shuffle(shuffled)
    assert assign_shards(shuffled, n) == assign_shards(planned, n)


def test_balanced_by_interactions_not_by_count() -> None:
    planned = _planned([100, 1, 1, 1, 1, 96])
    assert [[p.weight for p in s] for s in assign_shards(planned, 2)] == [[100], [1, 1, 1, 1, 96]]


def test_shard_syntax() -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard("1/1") == (1, 1)
    for bad in ("0/2", "3/2", "2", "a/b", "1/0", "-1/2", ""):
        with pytest.raises(ConfigError, match="expected I/N"):
            parse_shard(bad)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("recorded"))


def test_cli_shards_cover_the_suite_and_merge_back(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    shutil.copytree(recorded, root)
    monkeypatch.chdir(root)
    cli = in_process_cli(monkeypatch, capsys)
    whole = json.loads(cli("replay", "--all", "scenarios", "-j", "1", "--json")[1])
    parts = []
    for i in (1, 2, 3):
        code, out, err = cli("replay", "--all", "scenarios", "-j", "1", "--shard", f"{i}/3", "--json",
                             "--junit", f"shard-{i}.xml")
        (root / f"shard-{i}.json").write_text(out)
        parts.append(json.loads(out))
        assert f"shard {i}/3:" in err and parts[-1]["shard"] == f"{i}/3"
        assert code == parts[-1]["totals"]["exit_code"]
    covered = [r["scenario_path"] for p in parts for r in p["runs"]]
    assert sorted(covered) == [r["scenario_path"] for r in whole["runs"]] and len(set(covered)) == len(covered)

    code, out, _ = cli("replay", "merge", "shard-1.json", "shard-2.json", "shard-3.json", "--json",
                       "--junit", "merged.xml", "--summary-md", "merged.md")
    merged = json.loads(out)
    assert code == 1 == whole["totals"]["exit_code"]
    assert [r["scenario_path"] for r in merged["runs"]] == [r["scenario_path"] for r in whole["runs"]]
    keep = ("scenarios", "passed", "failed", "skipped", "errors", "expectations", "expectations_failed",
            "replayed_calls", "avoided_usd", "exit_code")
    assert {k: merged["totals"][k] for k in keep} == {k: whole["totals"][k] for k in keep}
    assert int(valid_junit(root / "merged.xml").get("tests")) == 19
    assert (root / "merged.md").read_text().startswith("## ❌ tvdb replay: 1 of 4 scenarios passed\n")

    code, out, _ = cli("replay", "merge", "shard-1.xml", "shard-2.xml", "shard-3.xml", "--junit", "from-xml.xml")
    junit = valid_junit(root / "from-xml.xml")
    assert code == 1 and (junit.get("tests"), junit.get("failures"), junit.get("errors")) == ("19", "8", "0")
    assert [s.get("id") for s in junit.findall("testsuite")] == ["0", "1", "2"]
    assert {s.get("name") for s in junit.findall("testsuite")} == {f"tvdb replay (shard {i}/3)" for i in (1, 2, 3)}

    # the same shard twice is an overlap, not a bigger suite
    code, out, _ = cli("replay", "merge", "shard-1.json", "shard-1.json", "--json")
    assert code == 2 and "the shards overlap" in json.loads(out)["error"]["message"]
    code, _, err = cli("replay", "merge", "shard-2.xml", "shard-2.xml", "--junit", "x.xml")
    assert code == 2 and "the shards overlap" in err
    code, _, err = cli("replay", "merge", "shard-1.json", "shard-2.xml", "--junit", "x.xml")
    assert code == 2 and "not a mix" in err
    code, _, err = cli("replay", "merge", "shard-1.xml", "--summary-md", "x.md", "--junit", "x.xml")
    assert code == 2 and "need the shards' --json files" in err
