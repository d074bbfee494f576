"""Issue 23, C9: `harness plan CONFIG --pilot RUN` takes its discordance only from a pilot of
the config's task type and label set that shares arms with it (the arms are named); another
pilot is one error line, as the gate refuses a baseline. Through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from run_helpers import FIXTURE_RUNS

from harness.analysis.planning import check_pilot
from harness.cli import main
from harness.errors import InputError
from harness.running.store import read_meta


def _pilot(tmp_path: Path, **meta: Any) -> Path:
    """A copy of the committed complete run (zero-shot, few-shot k=1/2/4, fine-tuned; the four
    routing labels), run.json changed by `meta`."""
    run = shutil.copytree(FIXTURE_RUNS / "complete", tmp_path / "pilot")
    data = json.loads((run / "run.json").read_text())
    data.update(meta)
    (run / "run.json").write_text(json.dumps(data))
    return run


def _plan(capsys: pytest.CaptureFixture[str], cfg: Path, pilot: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["plan", str(cfg), "--pilot", str(pilot)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def _one_error(err: str) -> str:
    (line,) = err.splitlines()
    assert line.startswith("error: --pilot ")
    return line


def test_a_pilot_of_another_task_type_is_refused(make_config, tmp_path, capsys):
    pilot = _pilot(tmp_path, task_type="extraction", labels=[])
    code, out, err = _plan(capsys, make_config(n_eval=50), pilot)
    assert code == 2 and out == ""
    line = _one_error(err)
    assert f"--pilot {pilot}: the pilot run is task 'extraction', this config is " \
           "'classification'" in line, line
    assert "label set" not in line.split("; its disagreement")[0]  # the type says it all


def test_a_pilot_of_another_label_set_is_refused(make_config, tmp_path, capsys):
    pilot = _pilot(tmp_path, labels=["billing", "shipping", "returns", "refund"])
    code, out, err = _plan(capsys, make_config(n_eval=50), pilot)
    assert code == 2 and out == ""
    line = _one_error(err)
    assert ("the pilot run has another label set (4 labels, this config 4; only in the pilot: "
            "'refund'; only in this config: 'account')") in line, line


def test_a_pilot_sharing_no_arm_is_refused(make_config, tmp_path, capsys):
    pilot = _pilot(tmp_path)
    cfg = make_config(n_eval=50, strategies=[
        {"name": "zs-v2", "type": "zero_shot", "model": "fake"},
        {"name": "fs-v2", "type": "few_shot", "model": "fake", "shots": [8]}])
    code, out, err = _plan(capsys, cfg, pilot)
    assert code == 2 and out == ""
    line = _one_error(err)
    assert "the pilot run shares no arm with this config (the pilot has few-shot@k=1, " \
           "few-shot@k=2, few-shot@k=4, fine-tuned, zero-shot; the config zs-v2, " \
           "fs-v2@k=8)" in line, line


def test_the_plan_names_the_arms_the_pilot_shares(make_config, tmp_path, capsys):
    pilot = _pilot(tmp_path)
    code, out, _ = _plan(capsys, make_config(n_eval=50), pilot)  # zero-shot, few-shot k=1, 2
    assert code == 0
    source = next(line for line in out.splitlines() if line.startswith("discordance from"))
    assert source.endswith("it shares 3 arm(s) with this config: zero-shot, few-shot@k=1, "
                           "few-shot@k=2"), source


def test_check_pilot_compares_labels_as_sets_and_keeps_the_configs_order(tmp_path):
    meta = read_meta(FIXTURE_RUNS / "complete")
    labels = ["account", "returns", "shipping", "billing"]  # another order: the same set
    assert check_pilot(meta, "classification", labels, ["fine-tuned", "zero-shot", "new"],
                       "p") == ["fine-tuned", "zero-shot"]
    with pytest.raises(InputError, match="only in this config: 'x'"):
        check_pilot(meta, "classification", [*labels, "x"], ["zero-shot"], "p")


def test_only_pairs_of_arms_the_config_has_are_planned(make_config, tmp_path, capsys):
    pilot = _pilot(tmp_path)  # zero-shot, few-shot k=1/2/4, fine-tuned
    code, out, _ = _plan(capsys, make_config(n_eval=50), pilot)  # zero-shot, few-shot k=1, 2
    assert code == 0
    pairs = [line.split()[0:3] for line in out.splitlines() if " vs " in line]
    assert pairs and all("fine-tuned" not in p and "few-shot@k=4" not in p for p in pairs), out
