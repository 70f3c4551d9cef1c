"""The GitHub Actions workflows: valid against the workflow schema check-jsonschema vendors (offline),
shaped as the issue asks (no secrets on pull requests, the key check before any commit, the drift
canary's command), and replay.yml's own commands run here with the network blocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.suite_support import valid_junit
from tvdb.scenarios.discover import discover_scenarios

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
NAMES = ("replay.yml", "record.yml", "drift.yml")


def _load(name: str) -> dict[Any, Any]:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc, dict)
    return doc


def _on(doc: dict[Any, Any]) -> Any:
    return doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True


def _steps(doc: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    steps = doc["jobs"][job]["steps"]
    assert isinstance(steps, list)
    return steps


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *map(str, files)], capture_output=True, text=True, timeout=120)


def test_the_workflows_are_valid_github_actions_workflows() -> None:
    done = _check_jsonschema(*(WORKFLOWS / n for n in NAMES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    doc = _load("replay.yml")
    del doc["jobs"]["replay"]["runs-on"]  # every job needs a runner
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(doc))
    done = _check_jsonschema(broken)
    assert done.returncode == 1 and "runs-on" in done.stdout


def test_replay_runs_on_pull_requests_with_no_secrets_and_a_shard_matrix() -> None:
    text = (WORKFLOWS / "replay.yml").read_text()
    doc = _load("replay.yml")
    assert "pull_request" in _on(doc)
    assert "secrets." not in text and doc["permissions"] == {"contents": "read"}
    job = doc["jobs"]["replay"]
    assert job["strategy"]["matrix"]["shard"] == list(range(1, int(doc["env"]["SHARDS"]) + 1))
    assert job["strategy"]["fail-fast"] is False
    steps = _steps(doc, "replay")
    assert any(s.get("run") == "python -m pip install ." for s in steps)  # from the repository, not PyPI
    command = _replay_step(doc)["run"]
    for part in ("tvdb replay --all scenarios", '--shard "${{ matrix.shard }}/$SHARDS"', "--junit",
                 '--summary-md "$GITHUB_STEP_SUMMARY"'):
        assert part in command
    assert "continue-on-error" not in _replay_step(doc)  # exit ≠ 0 fails the job
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "replay-${{ matrix.shard }}.*"
    merge = next(s for s in _steps(doc, "report") if "tvdb replay merge" in str(s.get("run")))
    assert "--junit replay.xml" in merge["run"] and doc["jobs"]["report"]["needs"] == "replay"


def test_record_checks_the_cassettes_before_anything_is_committed() -> None:
    doc = _load("record.yml")
    assert set(_on(doc)) == {"workflow_dispatch"}
    assert "scenarios" in _on(doc)["workflow_dispatch"]["inputs"]
    steps = _steps(doc, "record")
    runs = [str(s.get("run", "")) for s in steps]
    record = next(i for i, r in enumerate(runs) if "tvdb run" in r and "--record" in r)
    check = next(i for i, r in enumerate(runs) if "tvdb cassette check cassettes/" in r)
    commit = next(i for i, r in enumerate(runs) if "git" in r and "commit" in r)
    assert record < check < commit and "gh pr create" in runs[commit]
    assert steps[record]["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert steps[check]["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"  # it scans for the real key too
    assert "${{ inputs" not in "".join(runs)  # inputs reach scripts through env, never spliced in


def test_drift_runs_nightly_with_secrets_and_the_drift_command() -> None:
    doc = _load("drift.yml")
    assert _on(doc)["schedule"][0]["cron"] == "23 4 * * *"
    step = next(s for s in _steps(doc, "drift") if "tvdb cassette drift" in str(s.get("run")))
    assert 'tvdb cassette drift "$@" --sample 3 --max-usd 0.05' in step["run"]
    assert step["env"]["LLAMA_CLOUD_API_KEY"] == "${{ secrets.LLAMA_CLOUD_API_KEY }}"


# -- replay.yml's commands, run here -----------------------------------------------------------

def _replay_step(doc: dict[Any, Any]) -> dict[str, Any]:
    return next(s for s in _steps(doc, "replay") if "tvdb replay --all" in str(s.get("run")))


BLOCK = '''import socket
_connect = socket.socket.connect
def _refuse(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    raise OSError("network blocked by the test: " + repr(address))
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
'''


def _offline(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """A command prefix and environment with no network: a network namespace of our own when the
    machine allows one (`unshare -rn`), else every Python socket refused by sitecustomize."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"], {}
    (tmp / "block").mkdir()
    (tmp / "block" / "sitecustomize.py").write_text(BLOCK)
    return [], {"PYTHONPATH": str(tmp / "block")}


def _github_run(script: str, cwd: Path, env: dict[str, str], prefix: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a step's `run:` as GitHub does with `shell: bash` (bash -eo pipefail)."""
    return subprocess.run([*prefix, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def test_replay_yml_command_replays_the_repository_offline(tmp_path: Path) -> None:
    doc = _load("replay.yml")
    project = tmp_path / "checkout"
    shutil.copytree(REPO / "scenarios", project / "scenarios")
    shutil.copytree(REPO / "cassettes", project / "cassettes")
    prefix, extra = _offline(tmp_path)
    summary = tmp_path / "step-summary.md"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TVDB_", "OPENAI_", "LLAMA_"))},
           **{k: str(v) for k, v in doc["env"].items()}, **extra,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_STEP_SUMMARY": str(summary), "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"]}
    shards = doc["jobs"]["replay"]["strategy"]["matrix"]["shard"]
    runs = []
    for shard in shards:
        script = _replay_step(doc)["run"].replace("${{ matrix.shard }}", str(shard))
        done = _github_run(script, project, env, prefix)
        assert done.returncode == 0, done.stderr[-3000:]
        runs += json.loads((project / f"replay-{shard}.json").read_text())["runs"]
        valid_junit(project / f"replay-{shard}.xml")
    every = discover_scenarios(project / "scenarios")
    assert sorted(r["scenario_path"] for r in runs) == [p.relative_to(project).as_posix() for p in every]
    recorded = {p.stem for p in (project / "cassettes").glob("*.yaml")}
    outcome = {r["scenario"]: r["outcome"] for r in runs}
    assert outcome == {n: "passed" if n in recorded else "skipped" for n in outcome}  # mock-only: no cassette
    assert {"real-embeddings-emulated", "real-parse-emulated"} <= recorded
    assert all(r["cost_usd"] == 0 and r["replay"]["replayed_calls"] > 0 for r in runs if r["outcome"] == "passed")
    assert summary.read_text().count("## ✅ tvdb replay (shard ") == len(shards)

    merge = next(s for s in _steps(doc, "report") if "tvdb replay merge" in str(s.get("run")))["run"]
    done = _github_run(merge, project, env, prefix)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(valid_junit(project / "replay.xml").get("tests")) == sum(
        1 + len(r.get("expectations") or []) for r in runs)
    passed = sum(1 for r in runs if r["outcome"] == "passed")
    assert f"## ✅ tvdb replay: {passed} of {len(runs)} scenarios passed" in summary.read_text()


def test_replay_yml_command_fails_the_job_on_a_regression(tmp_path: Path) -> None:
    doc = _load("replay.yml")
    project = tmp_path / "checkout"
    shutil.copytree(REPO / "scenarios", project / "scenarios")
    shutil.copytree(REPO / "cassettes", project / "cassettes")
    notes = project / "scenarios" / "quickstart" / "release-notes.txt"
    notes.write_text(notes.read_text().replace("CSV", "TSV"))  # a change the cassettes did not see
    prefix, extra = _offline(tmp_path)
    env = {**os.environ, **{k: str(v) for k, v in doc["env"].items()}, **extra, "SHARDS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_STEP_SUMMARY": str(tmp_path / "s.md"), "TIKTOKEN_CACHE_DIR": os.environ["TIKTOKEN_CACHE_DIR"]}
    done = _github_run(_replay_step(doc)["run"].replace("${{ matrix.shard }}", "1"), project, env, prefix)
    assert done.returncode == 1, done.stderr[-3000:]
    runs = json.loads((project / "replay-1.json").read_text())["runs"]
    assert {r["outcome"] for r in runs if r["scenario"].startswith("real-")} == {"failed"}
    assert "cassette_miss" in (project / "replay-1.xml").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_no_workflow_prints_or_stores_a_secret(name: str) -> None:
    doc = _load(name)
    for job in doc["jobs"].values():
        for step in job["steps"]:
            assert "secrets." not in str(step.get("run", "")), "secrets reach steps through env only"
            assert "secrets." not in str(step.get("with", ""))
