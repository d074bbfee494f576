"""The pytest plugin (issue 27, item 5): a user's own test file gates a run with
`harness.testing.assert_gate` and gets runs from the `harness_run` fixture.

Real runs through the loopback server are made here, in the outer test; the user's test file
(run by pytester, in process, with the plugin loaded from its `pytest11` entry point) gets
their folders and the baseline by path."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import LABELS, synthetic_rows, write_csv
from fake_openai import FakeOpenAI, last_user_content

from harness.api import gate, run
from harness.errors import InputError
from harness.gating import markdown
from harness.testing import GateFailed, RunOrReuse, assert_gate, reuse_or_run

pytest_plugins = ["pytester"]

GOOD = "Route the support message."
WORSE = "Route the support message. Guess when unsure."


def responder(body: dict[str, Any]) -> str:
    """Right, except that under the worsened prompt zero-shot mislabels messages 0-2 of each
    label (12 of 20); few-shot stays right."""
    text = last_user_content(body)
    label = text.splitlines()[0]
    i = int(re.search(r"message (\d+) about", text).group(1))  # type: ignore[union-attr]
    worse = "Guess when unsure" in str(body["messages"][0]["content"])
    if worse and len(body["messages"]) == 2 and i in {0, 1, 2}:
        return json.dumps({"label": "account" if label != "account" else "billing"})
    return json.dumps({"label": label})


@dataclass(frozen=True)
class Project:
    """The configs, the two finished runs, the baseline and the server that answered them."""

    server: FakeOpenAI
    good: Path  # config with the baseline prompt
    worse: Path  # the same config with the worsened prompt
    base_run: Path
    worse_run: Path
    baseline: Path
    history: Path


def _config(root: Path, name: str, instructions: str, base_url: str) -> Path:
    cfg = {
        "name": "routing",
        "task": {"type": "classification", "instructions": instructions, "labels": "labels.json"},
        "dataset": {"eval": "eval.csv", "train": "train.csv", "input": "text", "target": "category"},
        "models": {"fake": {"provider": "openai", "model": "fake-model", "base_url": base_url,
                            "api_key_env": "TEST_API_KEY"}},
        "strategies": [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
                       {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1]}],
        "run": {"concurrency": 4, "timeout": 5, "max_attempts": 2},
    }
    path = root / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("plugin")
    write_csv(root / "eval.csv", synthetic_rows(5, "eval"))
    write_csv(root / "train.csv", synthetic_rows(6, "train"))
    (root / "labels.json").write_text(json.dumps(LABELS))
    with pytest.MonkeyPatch.context() as mp, FakeOpenAI(responder=responder) as server:
        mp.setenv("TEST_API_KEY", "sk-test")  # module scope: before the autouse isolation
        mp.setenv("HARNESS_REGISTRY", str(root / "finetunes.json"))
        history = root / "history.jsonl"
        good = _config(root, "good.yaml", GOOD, server.base_url)
        worse = _config(root, "worse.yaml", WORSE, server.base_url)
        base_run = run(good, root / "base", use_cache=False, history=history).out
        worse_run = run(worse, root / "worse", use_cache=False, history=history).out
        baseline = root / "baselines" / "routing.json"
        assert gate(base_run, baseline, update=True).passed
        yield Project(server, good, worse, base_run, worse_run, baseline, history)


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    found = {e.name: e.value for e in entry_points(group="pytest11")}
    assert found.get("harness") == "harness.testing"


USER_TESTS = """
from harness.testing import assert_gate

def test_the_baseline_run_passes():
    result = assert_gate({base!r}, {baseline!r}, max_drop=0.02)
    assert result.passed

def test_the_worse_prompt_fails():
    assert_gate({worse!r}, {baseline!r}, max_drop=0.02)
"""


def test_a_users_gate_test_passes_on_the_baseline_and_fails_on_the_worse_prompt(
        pytester: pytest.Pytester, project: Project) -> None:
    pytester.makepyfile(test_routing=USER_TESTS.format(
        base=str(project.base_run), worse=str(project.worse_run), baseline=str(project.baseline)))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([  # fnmatch: "[[]" is a literal "["
        "*test_the_worse_prompt_fails*",
        ">       assert_gate(*",
        "E * ### harness gate: FAILED (1 failing)",
        "E * | arm | metric | baseline | now | change (95% CI) | p (Holm) | status |",
        "E * | zero-shot | accuracy | 100.0% | 40.0% | -60.0 pts [[]-*, -*] | * (McNemar) "
        "| **FAIL** regression |",
        "E * | few-shot@k=1 | accuracy | 100.0% | 100.0% | +0.0 pts [[]*] | * | ok |",
        "test_routing.py:*: GateFailed",
        "FAILED test_routing.py::test_the_worse_prompt_fails - *GateF*",
    ])
    out = result.stdout.str()
    # the traceback stops at the user's line: no frame of harness's own code
    for frame in ("harness/testing.py", "harness/api.py", "harness/gating", "Traceback"):
        assert frame not in out, out
    assert "test_the_baseline_run_passes" not in out.split("FAILURES")[-1]


def test_gate_failed_is_an_assertion_error_whose_text_is_the_table(project: Project) -> None:
    with pytest.raises(GateFailed) as info:
        assert_gate(project.worse_run, project.baseline)
    assert isinstance(info.value, AssertionError) and not info.value.result.passed
    assert str(info.value) == markdown(info.value.result).rstrip("\n")
    assert (project.worse_run / "gate.md").read_text() == markdown(info.value.result)
    assert assert_gate(project.base_run, project.baseline).passed


def test_bad_input_is_an_input_error(project: Project, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a run folder"):
        assert_gate(tmp_path, project.baseline)
    with pytest.raises(InputError, match="max-drop"):
        assert_gate(project.base_run, project.baseline, max_drop=2)


USER_FIXTURE_TESTS = """
from pathlib import Path
from harness.testing import assert_gate

def test_gate_the_routing_run(harness_run):
    run = harness_run({config!r}, {out!r})
    assert run == Path({out!r})
    assert_gate(run, {baseline!r})
"""


def test_the_fixture_reuses_a_finished_run_without_a_request(
        pytester: pytest.Pytester, project: Project) -> None:
    before = len(project.server.requests)
    meta = (project.base_run / "run.json").read_text()
    pytester.makepyfile(test_fixture=USER_FIXTURE_TESTS.format(
        config=str(project.good), out=str(project.base_run), baseline=str(project.baseline)))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert len(project.server.requests) == before
    assert (project.base_run / "run.json").read_text() == meta


def test_the_fixture_runs_a_new_folder_then_reuses_it(
        harness_run: RunOrReuse, project: Project, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", "sk-test")
    assert harness_run is reuse_or_run
    before = len(project.server.requests)
    out = harness_run(project.good, tmp_path / "fresh", use_cache=False, history=project.history)
    assert out == tmp_path / "fresh" and (out / "summary.json").exists()
    asked = len(project.server.requests) - before
    assert asked == 40  # 20 examples x 2 arms (and the warm-up requests, if any, counted here)
    assert harness_run(project.good, out) == out
    assert len(project.server.requests) - before == asked
    assert_gate(out, project.baseline)


def test_a_folder_holding_another_configs_run_is_refused(project: Project) -> None:
    before = len(project.server.requests)
    with pytest.raises(InputError, match="would not reproduce"):
        reuse_or_run(project.worse, project.base_run)
    assert len(project.server.requests) == before
