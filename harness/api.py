"""The public Python API: everything the CLI does, callable from Python (the CLI only prints).

    import harness
    cfg = harness.load_config("configs/quickstart.yaml")
    result = harness.run(cfg, "reports/quickstart")
    results, summary = harness.read_run("reports/quickstart")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import Config
from harness.config import load_config as _load_config
from harness.errors import HarnessError, InputError
from harness.running.plan import check_task, default_out_dir, plan
from harness.running.runner import Counts, Progress, Runner
from harness.running.store import META, read_meta, read_records

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis import Analysis
    from harness.gating import GateResult
    from harness.model.registry import FineTune

Log = Callable[[str], None]
LossProgress = Callable[[int, int, float], None]


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config, including the checks of its task type (InputError)."""
    cfg = _load_config(path)
    check_task(cfg)
    return cfg


@dataclass(frozen=True)
class RunResult:
    """What `run` did and found."""

    out: Path
    counts: Counts
    analysis: Analysis


def run(cfg: Config | str | Path, out: str | Path | None = None, *, use_cache: bool = True,
        progress: Progress | None = None, train_progress: LossProgress | None = None,
        log: Log = lambda _m: None, base_urls: dict[str, str] | None = None,
        resume: bool = False) -> RunResult:
    """Run every strategy of a config into `out` (resuming a run of the same config there),
    training missing fine-tunes marked `train_if_missing` first; write the reports and, for a
    complete run, append to the history file.

    With `resume`, `out` must already hold a run (its run.json): an InputError otherwise, raised
    before anything is written. Without it, a run of the same config in `out` is resumed too.

    On a failure after the run started, partial reports (marked incomplete) are written before
    the error is raised again.
    """
    from harness.analysis.history import append_history
    from harness.report import write_reports
    from harness.training import ensure_fine_tunes

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    if resume and out is None:
        raise InputError("--resume: name the run folder to resume with --out")
    out_dir = Path(out) if out is not None else default_out_dir(cfg)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out: {out_dir} exists and is not a folder")
    if resume and not (out_dir / META).is_file():
        raise InputError(f"--resume: {out_dir} holds no run to resume (no {META}); "
                         "drop --resume to start a new run there")
    p = ensure_fine_tunes(plan(cfg), progress=train_progress, log=log)
    for s in p.strategies:
        if s.arm.unavailable:
            log(f"warning: {s.arm.strategy}: {s.arm.unavailable}")
    runner = Runner(p, out_dir, use_cache=use_cache, progress=progress, base_urls=base_urls)
    try:
        counts = runner.execute()
    except HarnessError as exc:
        if not isinstance(exc, InputError) and (out_dir / META).exists():
            write_reports(out_dir)
            log(f"partial reports (marked incomplete) written to {out_dir}")
        raise
    a = write_reports(out_dir)
    if a.complete:
        append_history(out_dir, a.summary, read_meta(out_dir))
    return RunResult(out_dir, counts, a)


def read_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, summary) DataFrames of a run folder: one row per example x arm, one per arm."""
    a = analyse(run_dir)
    return a.results, a.summary


def analyse(run_dir: str | Path) -> Analysis:
    """Every table and the verdict of a run folder, computed from its records (no model call)."""
    from harness.analysis import analyse as _analyse

    d = Path(run_dir)
    return _analyse(read_records(d), read_meta(d))


def write_reports(run_dir: str | Path, *, rescore: bool = False) -> Analysis:
    """Rebuild every report file of a run folder; `rescore` first scores each stored output again."""
    from harness.report import write_reports as _write

    return _write(Path(run_dir), rescore=rescore)


def gate(run_dir: str | Path, baseline: str | Path, *, max_drop: float | None = None,
         alpha: float | None = None, update: bool = False) -> GateResult:
    """Gate a run against a baseline (writes gate.md and junit.xml; see `harness.gating`)."""
    from harness.gating import run_gate

    return run_gate(Path(run_dir), Path(baseline), max_drop=max_drop, alpha=alpha, update=update)


def finetune(cfg: Config | str | Path, strategy: str | None = None, *, out: str | Path | None = None,
             progress: LossProgress | None = None, log: Log = lambda _m: None,
             force: bool = False) -> FineTune:
    """Build training data for a fine_tuned strategy and train (or reuse) its model."""
    from harness.training import finetune as _finetune

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    return _finetune(cfg, strategy, out=Path(out) if out is not None else None, progress=progress,
                     log=log, force=force)
