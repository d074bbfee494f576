"""The gate refuses what it cannot compare (another config, task or label set; an incomplete
baseline) and fails on an arm that vanished from the run. Through the command line."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from fake_openai import last_user_content
from run_helpers import LABELS, make_run

from harness.cli import main

STRATEGIES = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
              {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1], "draws": 2}]
TASK = {"type": "classification", "instructions": "Route the support message."}


def right(body: dict[str, Any]) -> str:
    """Every answer right: the label is the message's first line."""
    return json.dumps({"label": last_user_content(body).splitlines()[0]})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs that answer every example right: the baseline's config, and variations of it."""
    root = tmp_path_factory.mktemp("gate-refusals")
    variants: dict[str, dict[str, Any]] = {
        "base": {},
        "renamed": {"extra": {"name": "quickstart"}},
        "relabelled": {"extra": {"task": {**TASK, "labels": [*LABELS, "other"]}}},
        "zero_only": {"strategies": STRATEGIES[:1]},
        "tiny": {"n_eval": 1},  # 4 examples: no drop on them is significant
    }
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the autouse isolation
        mp.setenv("HARNESS_HISTORY", str(root / "history.jsonl"))
        return {name: make_run(root, responder=right, strategies=v.get("strategies", STRATEGIES),
                               xss=False,
                               out_name=name, extra=v.get("extra"), n_eval=v.get("n_eval", 5))
                for name, v in variants.items()}


@pytest.fixture
def copy(runs: dict[str, Path], tmp_path: Path) -> Any:
    """A fresh copy of one of the module's runs (so gate.md is only what this test wrote)."""
    def make(name: str, as_name: str | None = None) -> Path:
        return shutil.copytree(runs[name], tmp_path / (as_name or name))
    return make


@pytest.fixture
def baseline_file(runs: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "baselines" / "routing.json"
    assert main(["gate", str(shutil.copytree(runs["base"], tmp_path / "for-baseline")),
                 "--baseline", str(path), "--update-baseline"]) == 0
    return path


def gate(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    """Exit code and the one error line (or the Markdown printed) of `harness gate ...`."""
    capsys.readouterr()
    code = main(["gate", *map(str, argv)])
    out, err = capsys.readouterr()
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        return code, lines[0]
    return code, out


def edit_meta(run: Path, **changes: Any) -> Path:
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, **changes}))
    return run


@pytest.mark.parametrize("kind", ["file", "folder", "summary.json", "results.jsonl"])
def test_a_baseline_of_another_config_is_refused(runs: dict[str, Path], baseline_file: Path, copy: Any,
                                                 capsys: pytest.CaptureFixture[str], kind: str) -> None:
    base = {"file": baseline_file, "folder": runs["base"], "summary.json": runs["base"] / "summary.json",
            "results.jsonl": runs["base"] / "results.jsonl"}[kind]
    run = copy("renamed")
    code, err = gate(capsys, run, "--baseline", base)
    assert code == 2
    assert err == (f"error: baseline {base} is config 'routing', this run is 'quickstart'; "
                   "pass --allow-different to compare anyway")
    assert not (run / "gate.md").exists() and not (run / "junit.xml").exists()
    code, out = gate(capsys, run, "--baseline", base, "--allow-different")
    assert code == 0
    assert ("- note: compared anyway (--allow-different): the baseline is config 'routing', "
            "this run is 'quickstart'") in out.splitlines()
    assert (run / "gate.md").read_text() == out


@pytest.mark.parametrize("kind", ["file", "folder", "summary.json"])
def test_a_baseline_with_another_label_set_is_refused(runs: dict[str, Path], baseline_file: Path,
                                                      copy: Any, capsys: pytest.CaptureFixture[str],
                                                      kind: str) -> None:
    base = {"file": baseline_file, "folder": runs["base"],
            "summary.json": runs["base"] / "summary.json"}[kind]
    code, err = gate(capsys, copy("relabelled"), "--baseline", base)
    assert code == 2
    assert err == (f"error: baseline {base} has another label set (4 labels, this run 5; only in "
                   "this run: 'other'); pass --allow-different to compare anyway")
    assert gate(capsys, copy("relabelled", "again"), "--baseline", base, "--allow-different")[0] == 0


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_baseline_of_another_task_type_is_refused(runs: dict[str, Path], baseline_file: Path,
                                                    copy: Any, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], kind: str) -> None:
    if kind == "folder":
        base = edit_meta(copy("base", "other-task"), task_type="extraction")
    else:
        base = tmp_path / "other-task.json"
        base.write_text(baseline_file.read_text().replace('"task_type": "classification"',
                                                          '"task_type": "extraction"'))
    code, err = gate(capsys, copy("base"), "--baseline", base)
    assert code == 2
    assert err == (f"error: baseline {base} is task 'extraction', this run is 'classification'; "
                   "pass --allow-different to compare anyway")


def test_every_difference_is_named_in_the_one_line(runs: dict[str, Path], copy: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = edit_meta(copy("base", "other"), name="banking77", task_type="extraction")
    code, err = gate(capsys, copy("base"), "--baseline", base)
    assert code == 2
    assert err == (f"error: baseline {base} is config 'banking77', this run is 'routing'; it is task "
                   "'extraction', this run is 'classification'; pass --allow-different to compare anyway")


@pytest.mark.parametrize("kind", ["folder", "results.jsonl", "summary.json"])
def test_an_incomplete_baseline_is_refused(copy: Any, capsys: pytest.CaptureFixture[str],
                                           kind: str) -> None:
    partial = edit_meta(copy("base", "partial"), status="interrupted")
    assert main(["report", str(partial)]) == 0  # summary.json says so too
    base = partial if kind == "folder" else partial / kind
    run = copy("base")
    for extra in ([], ["--allow-different"]):
        code, err = gate(capsys, run, "--baseline", base, *extra)
        assert code == 2
        assert err.startswith(f"error: baseline {base} is an incomplete run (status interrupted)")
    assert not (run / "gate.md").exists()


def test_update_baseline_from_an_incomplete_run_is_refused(copy: Any, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    partial = edit_meta(copy("base", "partial"), status="interrupted")
    target = tmp_path / "new.json"
    code, err = gate(capsys, partial, "--baseline", target, "--update-baseline")
    assert code == 2
    assert err.startswith(f"error: --update-baseline: {partial} is incomplete (status interrupted)")
    assert not target.exists()


@pytest.mark.parametrize("kind", ["summary.json", "results.jsonl"])
def test_update_baseline_never_writes_over_a_run(copy: Any, capsys: pytest.CaptureFixture[str],
                                                 kind: str) -> None:
    target = copy("base", "baseline-run") / kind
    before = target.read_bytes()
    code, err = gate(capsys, copy("base"), "--baseline", target, "--update-baseline")
    assert code == 2 and err.startswith(f"error: --update-baseline: {target} is a run's ")
    assert target.read_bytes() == before


def test_update_baseline_of_another_config_needs_allow_different(
        baseline_file: Path, copy: Any, capsys: pytest.CaptureFixture[str]) -> None:
    before = baseline_file.read_text()
    code, err = gate(capsys, copy("renamed"), "--baseline", baseline_file, "--update-baseline")
    assert code == 2 and "is config 'routing', this run is 'quickstart'" in err
    assert baseline_file.read_text() == before
    code, _ = gate(capsys, copy("renamed", "again"), "--baseline", baseline_file, "--update-baseline",
                   "--allow-different")
    assert code == 0 and json.loads(baseline_file.read_text())["name"] == "quickstart"


def test_a_baseline_file_records_config_task_and_labels(baseline_file: Path) -> None:
    doc = json.loads(baseline_file.read_text())
    assert (doc["version"], doc["name"], doc["task_type"], doc["labels"]) == (
        1, "routing", "classification", LABELS)


def test_an_old_baseline_file_is_gated_with_a_note(runs: dict[str, Path], copy: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """tests/gating/baselines/routing-v1.json predates task_type and labels in baseline files."""
    committed = Path(__file__).parent / "baselines" / "routing-v1.json"
    assert "task_type" not in json.loads(committed.read_text())
    code, out = gate(capsys, copy("base"), "--baseline", committed)
    assert code == 0
    assert ("- note: the baseline does not record its task type or label set (an older baseline file "
            "or a summary.json): not checked against this run's; rewrite the baseline with "
            "--update-baseline to check it") in out.splitlines()
    code, err = gate(capsys, copy("renamed"), "--baseline", committed)  # its name is still checked
    assert code == 2 and "is config 'routing', this run is 'quickstart'" in err


def test_an_arm_missing_from_the_run_fails(baseline_file: Path, copy: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = copy("zero_only")
    code, out = gate(capsys, run, "--baseline", baseline_file)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "### harness gate: FAILED (2 failing)"
    assert "| few-shot@k=1 | accuracy | 100.0% | n/a | n/a | n/a | **FAIL** missing from this run |" in lines
    assert ("| few-shot@k=1 | schema compliance | 100.0% | n/a | n/a | n/a | **FAIL** missing from this "
            "run |") in lines
    assert _junit_failures(run) == {"few-shot@k=1 accuracy": "missing from this run",
                                    "few-shot@k=1 schema_compliance": "missing from this run"}


def test_an_arm_without_a_single_answer_counts_as_missing(copy: Any, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """An arm whose model is gone (every request failed) vanished too: on 4 examples its fall
    from 100% to nothing is not significant, and it used to pass as "drop not significant"."""
    baseline_file = tmp_path / "tiny.json"
    assert gate(capsys, copy("tiny", "tiny-base"), "--baseline", baseline_file, "--update-baseline")[0] == 0
    run = copy("tiny")
    lines = (run / "results.jsonl").read_text().splitlines()
    out_lines = []
    for line in lines:
        r = json.loads(line)
        if r["strategy"] == "few-shot":
            r.update(error_kind="model_unavailable", error="model 'gone' does not exist", output="",
                     prediction=None, correct=False, parse_ok=False, schema_valid=False)
        out_lines.append(json.dumps(r))
    (run / "results.jsonl").write_text("\n".join(out_lines) + "\n")
    code, out = gate(capsys, run, "--baseline", baseline_file)
    assert code == 1
    why = "missing from this run (no answers (model_unavailable: model 'gone' does not exist))"
    assert f"| few-shot@k=1 | accuracy | 100.0% | n/a | n/a | n/a | **FAIL** {why} |" in out.splitlines()
    assert _junit_failures(run) == {"few-shot@k=1 accuracy": why, "few-shot@k=1 schema_compliance": why}


def test_update_baseline_says_a_dropped_arm_is_dropped(baseline_file: Path, copy: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = gate(capsys, copy("zero_only"), "--baseline", baseline_file, "--update-baseline")
    assert code == 0
    assert "| few-shot@k=1 | accuracy | 100.0% | n/a | n/a | n/a | missing from this run (accepted: " \
           "dropped from the baseline) |" in out.splitlines()
    assert [a["name"] for a in json.loads(baseline_file.read_text())["arms"]] == ["zero-shot"]


def _junit_failures(run: Path) -> dict[str, str]:
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    return {str(tc.get("name")): str(f.get("message")) for tc in suite.iter("testcase")
            if (f := tc.find("failure")) is not None}
