"""`harness report RUN_DIR` rebuilds every report file of a run byte-for-byte (timestamps aside);
`--rescore` scores the stored outputs again and changes only what the scores change."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import FIXTURE_RUNS, make_run, read_jsonl

from harness.cli import main
from harness.running.records import FORMAT_VERSION
from harness.running.store import read_meta, read_records

TIMESTAMP = re.compile(rb"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
REPORT_FILES = {"report.html", "summary.json", "summary.csv", "results.csv", "comparisons.csv",
                "per_class.csv", "tried.csv"}
FIXTURES = ["complete", "interrupted", "version1"]


def _normalised(path: Path) -> bytes:
    return TIMESTAMP.sub(b"<timestamp>", path.read_bytes())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run with every arm type, its reports written by `harness run`."""
    return make_run(tmp_path_factory.mktemp("report"))


def test_report_command_reproduces_every_file(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    made = {p.name for p in run_dir.iterdir()} - {".harness.lock"}  # the run's lock stays behind
    for name in made - {"results.jsonl", "run.json"}:
        (copy / name).unlink()
    # a separate process with another hash seed, as a user would run it
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run([sys.executable, "-m", "harness", "report", str(copy)], env=env,
                          cwd=Path(__file__).parents[2], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in copy.iterdir()} - {".harness.lock"} == made
    for name in sorted(made):
        assert _normalised(copy / name) == _normalised(run_dir / name), f"{name} differs"


def test_report_in_process_is_identical_and_keeps_the_figures(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    assert main(["report", str(copy)]) == 0
    for name in sorted(REPORT_FILES):
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name
    summary = json.loads((copy / "summary.json").read_text())
    assert [(a["strategy"], a["k"]) for a in summary["arms"]] == [
        ("zero-shot", 0), ("few-shot", 1), ("few-shot", 2), ("few-shot", 4), ("fine-tuned", 0)]
    # 21 examples: zero-shot misses returns 0, 2, 4; few-shot returns 0; everyone the XSS input
    assert [a["accuracy"] for a in summary["arms"]] == pytest.approx(
        [17 / 21, 19 / 21, 19 / 21, 19 / 21, 20 / 21])


def test_report_on_a_folder_without_a_run_is_bad_input(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a run folder" in err[0]


@pytest.mark.parametrize("name", FIXTURES)
def test_rescore_without_a_change_reproduces_every_file(name: str, tmp_path: Path) -> None:
    plain, rescored = tmp_path / "plain", tmp_path / "rescored"
    shutil.copytree(FIXTURE_RUNS / name, plain)
    shutil.copytree(FIXTURE_RUNS / name, rescored)
    assert main(["report", str(plain)]) == 0
    assert main(["report", str(rescored), "--rescore"]) == 0
    files = _files(plain)
    assert set(files) == REPORT_FILES | {"run.json", "results.jsonl"}
    assert _files(rescored) == files  # byte for byte, timestamps included (they come from run.json)
    assert files["results.jsonl"] == (FIXTURE_RUNS / name / "results.jsonl").read_bytes()
    assert files["run.json"] == (FIXTURE_RUNS / name / "run.json").read_bytes()


def _zero_shot_accuracy(run: Path) -> float:
    summary = json.loads((run / "summary.json").read_text())
    return float(next(a["accuracy"] for a in summary["arms"] if a["strategy"] == "zero-shot"))


def test_rescore_after_a_changed_output_rewrites_the_records_and_keeps_the_old_file(
        tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert _zero_shot_accuracy(run) == pytest.approx(10 / 13)
    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines)
             if (r := json.loads(line))["strategy"] == "zero-shot" and r["expected"] == "billing"
             and r["correct"])
    rec = json.loads(lines[i])
    # the stored output now names another label; the stored score still says correct
    lines[i] = json.dumps({**rec, "output": json.dumps({"label": "account"})}, ensure_ascii=False) + "\n"
    edited = "".join(lines)
    (run / "results.jsonl").write_text(edited, encoding="utf-8")
    assert main(["report", str(run)]) == 0
    assert _zero_shot_accuracy(run) == pytest.approx(10 / 13)  # a plain report trusts the scores

    assert main(["report", str(run), "--rescore"]) == 0
    assert (run / "results.before-rescore.jsonl").read_text(encoding="utf-8") == edited
    after = read_jsonl(run / "results.jsonl")
    before = [json.loads(line) for line in lines]
    assert len(after) == len(before) == 104
    changed = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert len(changed) == 1
    b, a = changed[0]
    assert (a["arm"], a["example_id"]) == (rec["arm"], rec["example_id"])
    assert a == {**b, "prediction": "account", "correct": False}
    assert _zero_shot_accuracy(run) == pytest.approx(9 / 13)
    summary = json.loads((run / "summary.json").read_text())
    assert [a["accuracy"] for a in summary["arms"]][1:] == pytest.approx(
        [11 / 13, 11 / 13, 11 / 13, 12 / 13])  # other arms as they were

    # nothing to change now: the records and the kept file stay as they are
    now = (run / "results.jsonl").read_bytes()
    assert main(["report", str(run), "--rescore"]) == 0
    assert (run / "results.jsonl").read_bytes() == now
    assert sorted(p.name for p in run.glob("results.before-rescore*")) == ["results.before-rescore.jsonl"]

    # a second change keeps a second, numbered copy
    lines = now.decode().splitlines(keepends=True)
    j = next(j for j, line in enumerate(lines) if json.loads(line)["strategy"] == "fine-tuned")
    lines[j] = json.dumps({**json.loads(lines[j]), "output": "not json"}, ensure_ascii=False) + "\n"
    (run / "results.jsonl").write_text("".join(lines), encoding="utf-8")
    assert main(["report", str(run), "--rescore"]) == 0
    assert (run / "results.before-rescore.2.jsonl").read_text(encoding="utf-8") == "".join(lines)
    assert (run / "results.before-rescore.jsonl").read_text(encoding="utf-8") == edited
    ft = next(r for r in read_records(run) if r.strategy == "fine-tuned" and r.key == (
        json.loads(lines[j])["arm"], str(json.loads(lines[j])["example_id"])))
    assert not ft.parse_ok and not ft.correct and ft.error_kind is not None


def test_version_1_fixture_loads_and_its_reports_build(tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "version1", tmp_path / "v1")
    meta = read_meta(run)
    records = read_records(run)
    assert meta.format_version == 1 and FORMAT_VERSION == 2
    assert meta.status == "complete" and meta.task_type == "classification"
    assert len(meta.arms) == 8 and meta.examples == ("0", "1", "2", "3", "4", "5")
    assert len(records) == meta.expected_records == 48
    assert {r.format_version for r in records} == {1}
    assert main(["report", str(run)]) == 0
    assert {p.name for p in run.iterdir()} == REPORT_FILES | {"run.json", "results.jsonl"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["meta"]["complete"] is True and summary["meta"]["status"] == "complete"
    expected = {}
    for r in records:
        expected.setdefault((r.strategy, r.k), []).append(r.correct)
    assert [((a["strategy"], a["k"]), a["answers"], a["accuracy"]) for a in summary["arms"]] == [
        (arm, len(c), pytest.approx(sum(c) / len(c))) for arm, c in expected.items()]
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="incomplete"' not in html and 'id="learning-curve"' in html


def test_interrupted_fixture_reports_what_it_has(tmp_path: Path) -> None:
    run = shutil.copytree(FIXTURE_RUNS / "interrupted", tmp_path / "partial")
    assert len(read_records(run)) == 19  # the line cut off by the interruption is ignored
    assert main(["report", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["meta"]["complete"] is False and summary["meta"]["status"] == "interrupted"
    assert [(a["strategy"], a["k"], a["n"]) for a in summary["arms"]] == [
        ("zero-shot", 0, 13), ("few-shot", 1, 6), ("few-shot", 2, 0), ("few-shot", 4, 0),
        ("fine-tuned", 0, 0)]
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Incomplete run" in html and "19 of 104 results recorded" in html
