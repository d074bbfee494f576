"""Issue 23, C8: a corrupt history file is named, not skipped. A line that is not a history
record (cut short, `{}`, a field of the wrong type) is one error line naming the file and line;
only a last line cut short by a crash is skipped, with a warning, and the next run's append
drops it. Through the CLI (`harness run`, `harness history`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI

from harness.analysis.history import read_history, read_history_checked
from harness.cli import main
from harness.errors import InputError

ZERO_SHOT = [{"name": "zs", "type": "zero_shot", "model": "fake"}]


@pytest.fixture
def history(make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> tuple[Path, Path]:
    """(config, history file) after two complete runs of the config: two good lines."""
    monkeypatch.setenv("TEST_API_KEY", "x")
    path = tmp_path / "history.jsonl"
    monkeypatch.setenv("HARNESS_HISTORY", str(path))
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZERO_SHOT)
        for name in ("r1", "r2"):
            assert main(["run", str(cfg), "--out", str(tmp_path / name), "--no-cache"]) == 0
    assert len(path.read_text().splitlines()) == 2
    return cfg, path


def _history_error(cfg: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["history", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize(("bad", "words"), [
    ('{"config": "test", "run_dir": "/x", "arm": "zs", "accur\n', "line 2: not JSON"),
    ("{}\n", "line 2: not a history record (missing fields 'config', 'run_dir', 'arm'"),
    ("[1, 2]\n", "line 2: not a history record (a JSON list, not an object)"),
    (None, "line 2: not a history record (field 'accuracy' is \"high\", not an integer or a "
           "number or null)"),
    (None, "line 2: not a history record (field 'n' is true, not an integer)"),
])
def test_a_corrupt_history_line_is_named(history: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str], bad: str | None,
                                         words: str) -> None:
    cfg, path = history
    first, second = path.read_text().splitlines(keepends=True)
    if bad is None:  # a record of the config with one field of the wrong type
        field = "accuracy" if "accuracy" in words else "n"
        bad = json.dumps({**json.loads(first), field: "high" if field == "accuracy" else True}) + "\n"
    path.write_text(first + bad + second)
    line = _history_error(cfg, capsys)
    assert f"{path} {words}" in line, line
    assert "fix or delete the line" in line
    with pytest.raises(InputError, match="line 2"):
        read_history(path, "another-config")  # the file is checked whole, whoever reads it


def test_a_crash_cut_last_line_is_skipped_with_a_warning_and_dropped_by_the_next_run(
        history: tuple[Path, Path], make_config: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg, path = history
    good = path.read_text()
    path.write_text(good + '{"config": "test", "run_dir": "/cut-by-a-crash", "ar')
    records, warnings = read_history_checked(path, "test")
    assert len(records) == 2
    assert warnings == [f"history file {path} line 3: skipped, cut short (not JSON, no newline "
                        "at its end: a write interrupted by a crash); the next run's append "
                        "drops it"]
    capsys.readouterr()
    assert main(["history", str(cfg), "--window", "2"]) == 0
    assert capsys.readouterr().out.startswith("zs on fake-model:\n  v1 prompt ")
    # the next run appends after the good lines: the cut one is gone, the file reads cleanly
    with FakeOpenAI() as server:
        cfg = make_config(server.base_url, n_eval=2, strategies=ZERO_SHOT)
        assert main(["run", str(cfg), "--out", str(tmp_path / "r3"), "--no-cache"]) == 0
    text = path.read_text()
    assert text.startswith(good) and "/cut-by-a-crash" not in text
    assert len(text.splitlines()) == 3
    assert read_history_checked(path, "test") == (read_history(path, "test"), [])
    capsys.readouterr()
    assert main(["history", str(cfg)]) == 0


def test_the_cut_last_line_warning_reaches_stderr(history: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Needs cmd_history to print read_history_checked's warnings (see the C8 wiring)."""
    cfg, path = history
    path.write_text(path.read_text() + '{"config": "te')
    capsys.readouterr()
    assert main(["history", str(cfg)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: history file {path} line 3: skipped, cut short (not JSON, no "
                   "newline at its end: a write interrupted by a crash); the next run's append "
                   "drops it"]
