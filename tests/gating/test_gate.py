"""The regression gate: real runs through the fake server, compared with a baseline."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai import last_user_content
from run_helpers import make_run

from harness import gating as gate
from harness.analysis.comparisons import unpaired_test
from harness.errors import InputError
from harness.gating import ArmData, Snapshot, compare, load_baseline, markdown, run_gate, snapshot_from_run

STRATEGIES = [{"name": "zero-shot", "type": "zero_shot", "model": "fake"},
              {"name": "few-shot", "type": "few_shot", "model": "fake", "shots": [1], "draws": 2}]


def responder(wrong: set[int] = frozenset(), *, invalid: set[int] = frozenset(),
              only: str | None = None) -> Callable[[dict[str, Any]], str]:
    """Zero-shot answers wrongly (another valid label) for messages numbered in `wrong`, and
    with no JSON for those in `invalid` (restricted to label `only` if given); few-shot is right."""

    def reply(body: dict[str, Any]) -> str:
        text = last_user_content(body)
        label = text.splitlines()[0]
        i = int(re.search(r"message (\d+) about", text).group(1))  # type: ignore[union-attr]
        if len(body["messages"]) == 2 and (only is None or label == only):
            if i in invalid:
                return "sorry, no JSON today"
            if i in wrong:
                return json.dumps({"label": "account" if label != "account" else "billing"})
        return json.dumps({"label": label})

    return reply


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs of one config (20 examples): baseline, regression, noise, schema failures."""
    root = tmp_path_factory.mktemp("gate")
    plans = {
        "base": responder(),
        "regressed": responder({0, 1, 2}),  # zero-shot: 12 of 20 wrong
        "noise": responder({0}, only="billing"),  # zero-shot: 1 of 20 wrong
        "schema": responder(invalid={0}),  # zero-shot: 4 of 20 not JSON
    }
    extra = {"gate": {"min_schema_compliance": 0.9}}
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the autouse isolation
        mp.setenv("HARNESS_HISTORY", str(root / "history.jsonl"))
        return {name: make_run(root, responder=r, strategies=STRATEGIES, xss=False, out_name=name,
                               extra=extra) for name, r in plans.items()}


@pytest.fixture
def baseline(runs: dict[str, Path], tmp_path: Path) -> Path:
    """A gate baseline file made from the baseline run with --update-baseline."""
    path = tmp_path / "baselines" / "routing.json"
    path.parent.mkdir()
    assert run_gate(runs["base"], path, update=True).exit_code == 0
    return path


def _failing(result: gate.GateResult) -> list[tuple[str, str]]:
    return [(r.arm, r.metric) for r in result.rows if not r.passed]


def _row(result: gate.GateResult, arm: str, metric: str = "accuracy") -> gate.GateRow:
    return next(r for r in result.rows if (r.arm, r.metric) == (arm, metric))


def test_update_baseline_creates_a_small_file_then_the_same_run_passes(
        runs: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    first = run_gate(runs["base"], path, update=True)
    assert first.exit_code == 0 and first.baseline_written == path
    assert {r.status for r in first.rows} == {"new (no baseline)"}
    text = path.read_text()
    doc = json.loads(text)
    assert doc["format"] == "harness-gate-baseline" and doc["version"] == 1
    assert [a["name"] for a in doc["arms"]] == ["zero-shot", "few-shot@k=1"]
    assert doc["arms"][1]["correct"] == "2" * 20 and doc["arms"][1]["draws"] == 2
    # a line per key and per arm; no input or output of an example ("eval message ...")
    assert len(text.splitlines()) < 17 and "eval message" not in text
    again = run_gate(runs["base"], path)
    assert again.exit_code == 0 and {r.status for r in again.rows} == {"ok"}
    assert {r.test for r in again.rows} == {"McNemar"}


def test_significant_regression_fails(runs: dict[str, Path], baseline: Path) -> None:
    result = run_gate(runs["regressed"], baseline)
    assert result.exit_code == 1
    assert _failing(result) == [("zero-shot", "accuracy")]
    row = _row(result, "zero-shot")
    assert row.status == "regression" and row.test == "McNemar"
    assert row.baseline == 1.0 and row.now == pytest.approx(0.4)
    assert row.change is not None and row.change.estimate == pytest.approx(-0.6) and row.change.high < 0
    assert row.p_value == pytest.approx(2 * 0.5**12) and row.p_adjusted is not None
    assert row.p_adjusted < 0.05
    assert _row(result, "few-shot@k=1").status == "ok"
    assert (runs["regressed"] / "gate.md").read_text() == markdown(result)


def test_noise_sized_drop_passes(runs: dict[str, Path], baseline: Path) -> None:
    result = run_gate(runs["noise"], baseline)
    assert result.exit_code == 0
    row = _row(result, "zero-shot")
    assert row.change is not None and row.change.estimate == pytest.approx(-0.05)
    assert row.status == "drop not significant" and row.passed
    assert row.test == "McNemar" and row.p_value == pytest.approx(1.0)
    assert {r.status for r in result.rows if r is not row} == {"ok"}


def test_summary_json_baseline_uses_an_unpaired_test(runs: dict[str, Path]) -> None:
    summary = runs["base"] / "summary.json"
    bad = run_gate(runs["regressed"], summary)
    assert bad.exit_code == 1 and _failing(bad) == [("zero-shot", "accuracy")]
    assert _row(bad, "zero-shot").test == "z-test"
    assert run_gate(runs["noise"], summary).exit_code == 0


@pytest.mark.parametrize("which", ["folder", "results.jsonl"])
def test_run_folder_baseline_is_paired(runs: dict[str, Path], which: str) -> None:
    path = runs["base"] if which == "folder" else runs["base"] / "results.jsonl"
    result = run_gate(runs["regressed"], path)
    assert result.exit_code == 1 and _row(result, "zero-shot").test == "McNemar"


def test_floor_from_the_config_fails_without_a_significant_drop(runs: dict[str, Path],
                                                               baseline: Path) -> None:
    result = run_gate(runs["schema"], baseline)
    assert result.exit_code == 1
    assert ("zero-shot", "schema_compliance") in _failing(result)
    row = _row(result, "zero-shot", "schema_compliance")
    assert row.floor == 0.9 and row.now == pytest.approx(0.8)
    assert row.status == "drop not significant; below floor 90%"
    assert any("below the floor" in f for f in row.failures)


def test_floor_set_in_run_json_applies_to_every_arm(runs: dict[str, Path], baseline: Path,
                                                    tmp_path: Path) -> None:
    run = shutil.copytree(runs["noise"], tmp_path / "noise")
    meta = json.loads((run / "run.json").read_text())
    meta["gate"] = {"min_accuracy": 0.99, "max_drop": 0.5}
    (run / "run.json").write_text(json.dumps(meta))
    result = run_gate(run, baseline)
    assert result.exit_code == 1 and result.max_drop == 0.5
    assert _failing(result) == [("zero-shot", "accuracy")]
    assert _row(result, "zero-shot").status == "below floor 99%"
    assert run_gate(run, baseline, max_drop=0.02).max_drop == 0.02  # the command line wins


def test_update_baseline_accepts_a_regression_but_not_an_incomplete_run(
        runs: dict[str, Path], baseline: Path, tmp_path: Path) -> None:
    result = run_gate(runs["regressed"], baseline, update=True)
    assert result.exit_code == 0
    assert _row(result, "zero-shot").status == "regression (accepted: baseline updated)"
    doc = json.loads(baseline.read_text())
    assert doc["arms"][0]["accuracy"] == pytest.approx(0.4)
    assert run_gate(runs["regressed"], baseline).exit_code == 0
    run = shutil.copytree(runs["base"], tmp_path / "partial")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    with pytest.raises(InputError, match="incomplete"):
        run_gate(run, baseline, update=True)


def test_incomplete_run_fails_the_gate(runs: dict[str, Path], baseline: Path, tmp_path: Path) -> None:
    run = shutil.copytree(runs["base"], tmp_path / "partial")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    result = run_gate(run, baseline)
    assert result.exit_code == 1 and all(r.passed for r in result.rows)
    assert result.problems == (
        "the run is incomplete (status interrupted): figures cover part of the examples",)
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    failed = [tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["run complete"]


def test_junit_xml_has_a_case_per_arm_and_metric(runs: dict[str, Path], baseline: Path) -> None:
    run_gate(runs["regressed"], baseline)
    root = ET.parse(runs["regressed"] / "junit.xml").getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "5"
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert set(cases) == {"run complete", "zero-shot accuracy", "zero-shot schema_compliance",
                          "few-shot@k=1 accuracy", "few-shot@k=1 schema_compliance"}
    failure = cases["zero-shot accuracy"].find("failure")
    assert failure is not None and "fell 60.0 points" in (failure.get("message") or "")
    assert all(tc.find("failure") is None for n, tc in cases.items() if n != "zero-shot accuracy")
    assert {tc.get("classname") for tc in cases.values()} == {"harness.gate.routing"}


def test_markdown_table_for_a_pull_request(runs: dict[str, Path], baseline: Path) -> None:
    text = markdown(run_gate(runs["regressed"], baseline))
    assert text.isascii()
    lines = text.splitlines()
    assert lines[0] == "### harness gate: FAILED (1 failing)"
    head = lines.index("| arm | metric | baseline | now | change (95% CI) | p (Holm) | status |")
    assert lines[head + 1] == "|---|---|---:|---:|---|---:|---|"
    table = lines[head + 2:]
    assert len(table) == 4 and all(line.startswith("| ") and line.endswith(" |") for line in table)
    assert table[0] == ("| zero-shot | accuracy | 100.0% | 40.0% | -60.0 pts [-80.0, -40.0] | "
                        f"{_row(run_gate(runs['regressed'], baseline), 'zero-shot').p_adjusted:.3g} "
                        "(McNemar) | **FAIL** regression |")


@pytest.mark.parametrize("case", ["missing", "garbage", "wrong_shape", "not_a_run_folder",
                                  "run_dir_not_a_run", "max_drop", "alpha", "update_folder"])
def test_bad_input_raises_input_error(runs: dict[str, Path], baseline: Path, tmp_path: Path,
                                      case: str) -> None:
    kwargs: dict[str, Any] = {}
    run, path = runs["base"], baseline
    if case == "missing":
        path = tmp_path / "nope.json"
    elif case == "garbage":
        path = tmp_path / "garbage.json"
        path.write_text("{not json")
    elif case == "wrong_shape":
        path = tmp_path / "other.json"
        path.write_text(json.dumps({"hello": "world"}))
    elif case == "not_a_run_folder":
        path = tmp_path
    elif case == "run_dir_not_a_run":
        run = tmp_path
    elif case == "max_drop":
        kwargs["max_drop"] = 2.0
    elif case == "alpha":
        kwargs["alpha"] = 1.0
    else:
        path, kwargs["update"] = tmp_path, True
    with pytest.raises(InputError):
        run_gate(run, path, **kwargs)


def test_missing_arm_fails(runs: dict[str, Path], baseline: Path) -> None:
    current = snapshot_from_run(runs["base"])
    only_zero = replace(current, arms={"zero-shot": current.arms["zero-shot"]})
    result = compare(load_baseline(baseline), only_zero)
    assert result.exit_code == 1
    assert _failing(result) == [("few-shot@k=1", "accuracy"), ("few-shot@k=1", "schema_compliance")]
    assert _row(result, "few-shot@k=1").status == "missing from this run"


def _snap(arms: dict[str, list[int]], sha: str | None = "d") -> Snapshot:
    out = {}
    for name, correct in arms.items():
        per = {str(i): float(c) for i, c in enumerate(correct)}
        out[name] = ArmData(name, name, "zero_shot", 0, len(correct), 1,
                            {"accuracy": sum(correct) / len(correct), "schema_compliance": 1.0},
                            {"accuracy": per, "schema_compliance": dict.fromkeys(per, 1.0)})
    return Snapshot("x", "x", sha, out)


def test_holm_adjustment_spans_every_arm() -> None:
    before, after = [1] * 40, [0] * 7 + [1] * 33  # 7 discordant pairs: p = 2 / 2**7
    one = compare(_snap({"a": before}), _snap({"a": after}))
    assert _row(one, "a").p_value == pytest.approx(2 / 2**7)
    assert one.exit_code == 1  # two tests: Holm p = 0.03
    two = compare(_snap({"a": before, "b": before}), _snap({"a": after, "b": after}))
    assert two.exit_code == 0  # four tests: Holm p = 0.0625
    assert {_row(two, n).status for n in "ab"} == {"drop not significant"}


def test_changed_eval_set_falls_back_to_the_unpaired_test() -> None:
    result = compare(_snap({"a": [1] * 40}, sha="old"), _snap({"a": [0] * 10 + [1] * 30}))
    assert _row(result, "a").test == "z-test" and result.exit_code == 1
    assert result.notes == ("the eval set differs from the baseline's (dataset sha256): unpaired tests",)
    assert _row(result, "a").status == "regression" and _row(result, "a").now == pytest.approx(0.75)


def test_unpaired_test_numbers() -> None:
    t = unpaired_test(0.5, 100, 0.6, 100)
    ci, p = t.difference, t.p_value
    assert p == pytest.approx(0.1552, abs=1e-3)  # pooled z = 1.421
    assert ci.estimate == pytest.approx(-0.1) and -0.24 < ci.low < -0.22 and 0.03 < ci.high < 0.04
    t = unpaired_test(1.0, 50, 1.0, 50)
    ci, p = t.difference, t.p_value
    assert p == 1.0 and ci.low < 0 < ci.high


def test_gate_loads_no_statistics_stack(runs: dict[str, Path], baseline: Path) -> None:
    """`harness gate` uses the analysis's tests (analysis/comparisons.py) without pandas or
    scipy: a fresh interpreter gates a run and reads `sys.modules` at its end."""
    probe = ("import sys\nfrom harness.cli import main\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('pandas', 'scipy', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, "gate", str(runs["noise"]), "--baseline",
                           str(baseline)], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert "gate passed" in done.stderr and "(McNemar)" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_cli_gate(runs: dict[str, Path], baseline: Path, tmp_path: Path,
                  capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import build_parser, main

    if "gate" not in build_parser().format_help():
        pytest.skip("`harness gate` is not wired into harness/cli.py yet")
    assert main(["gate", str(runs["regressed"]), "--baseline", str(baseline)]) == 1
    assert "**FAIL** regression" in capsys.readouterr().out
    assert main(["gate", str(runs["noise"]), "--baseline", str(baseline), "--max-drop", "0.1"]) == 0
    capsys.readouterr()
    assert main(["gate", str(runs["noise"]), "--baseline", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: baseline ")


def test_ci_example_is_valid_and_uses_real_commands() -> None:
    from harness.cli import build_parser

    doc = yaml.safe_load((Path(__file__).parents[2] / "docs" / "ci-example.yml").read_text())
    steps = doc["jobs"]["gate"]["steps"]
    commands = [line.strip() for s in steps for line in str(s.get("run", "")).splitlines()
                if line.strip().startswith("harness ")]
    assert [c.split()[1] for c in commands] == ["validate", "run", "gate"]
    parser = build_parser()
    wired = "gate" in parser.format_help()
    for command in commands:
        argv = shlex.split(command.replace("$RUN_DIR", "reports/ci"))[1:]
        if argv[0] != "gate" or wired:
            parser.parse_args(argv)
    uploads = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert len(uploads) == 1 and "report.html" in uploads[0]["with"]["path"]


def test_committed_version_1_baseline_still_gates(runs: dict[str, Path]) -> None:
    """tests/baselines/routing-v1.json was written by --update-baseline from the 'base' run."""
    committed = Path(__file__).parent / "baselines" / "routing-v1.json"
    assert run_gate(runs["base"], committed).exit_code == 0
    result = run_gate(runs["regressed"], committed)
    assert result.exit_code == 1 and _failing(result) == [("zero-shot", "accuracy")]
