"""The public Python API: everything the CLI does, callable from Python (the CLI only prints).

    import harness
    cfg = harness.load_config("configs/quickstart.yaml")
    result = harness.run(cfg, "reports/quickstart")
    results, summary = harness.read_run("reports/quickstart")
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Config
from harness.config import load_config as _load_config
from harness.errors import HarnessError, InputError
from harness.running.lock import LOCK, RunLock
from harness.running.outcome import Counts
from harness.running.plan import check_task, default_out_dir, plan
from harness.running.store import META, read_columns, read_meta

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis import Analysis
    from harness.gating import GateResult
    from harness.model.registry import FineTune
    from harness.running.runner import Progress

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
        log: Log = lambda _m: None, base_urls: dict[str, str | list[str]] | None = None,
        resume: bool = False, keep_failures: bool = False, allow_missing: bool = False,
        history: str | Path | None = None) -> RunResult:
    """Run every strategy of a config into `out` (resuming a run of the same config there),
    training missing fine-tunes marked `train_if_missing` first; write the reports and, for a
    complete run, append to the history file (`history`, else $HARNESS_HISTORY, else
    reports/history.jsonl; once per run).

    `out` must be a new or empty folder, or hold a run this config can continue (only the
    settings that determine answers must match; see `harness.running.resume`). A folder with
    other files is refused, and so is a folder another run is using (it is locked while a run
    works in it). With `resume`, `out` must already hold a run. Each refusal is an InputError
    raised before anything is written.

    On resume, examples the endpoint failed on are requested again, unless `keep_failures`.
    An arm whose model does not exist makes the run incomplete (RunError) unless
    `allow_missing`; so do endpoint failures above `run.max_failure_rate`.

    On a failure after the run started, partial reports (marked incomplete) are written before
    the error is raised again.
    """
    from harness.analysis.history import append_history, history_path
    from harness.analysis.history_git import git_state
    from harness.running.preflight import preflight
    from harness.running.runner import Runner
    from harness.training import ensure_fine_tunes

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    if resume and out is None:
        raise InputError("--resume: name the run folder to resume with --out")
    out_dir = Path(out) if out is not None else default_out_dir(cfg)
    check_out_dir(out_dir, resume=resume)
    # the outermost folder this run creates: removed again if the input turns out bad
    created = next((d for d in reversed((out_dir, *out_dir.parents)) if not d.exists()), None)
    hist = history_path(history)
    check_history_writable(hist)  # before the first request, like --out and the cache
    where = git_state()  # the branch and commit the run starts on, for its history entries
    p = ensure_fine_tunes(plan(cfg), progress=train_progress, log=log)
    for note in p.notes:
        log(note)
    for s in p.strategies:
        if s.arm.unavailable:
            log(f"warning: {s.arm.strategy}: {s.arm.unavailable}")
    for warning in preflight(p).warnings:
        log(f"warning: {warning}")
    with RunLock(out_dir):
        try:
            runner = Runner(p, out_dir, use_cache=use_cache, progress=_preloading(progress),
                            base_urls=base_urls, keep_failures=keep_failures,
                            allow_missing=allow_missing, created=created, log=log)
        except InputError:
            if created is not None:  # e.g. an unusable cache folder: leave nothing behind
                shutil.rmtree(created, ignore_errors=True)
            raise
        try:
            counts = runner.execute()
        except HarnessError as exc:
            if not isinstance(exc, InputError) and (out_dir / META).exists():
                with signals_held():  # a second Ctrl-C / SIGTERM must not leave half the files
                    _warn_missing(out_dir, log)
                    write_reports(out_dir)
                log(f"partial reports (marked incomplete) written to {out_dir}")
            raise
        _warn_missing(out_dir, log)
        a = write_reports(out_dir)
        if a.complete:
            try:
                append_history(hist, out_dir, a.summary, read_meta(out_dir), log=log, git=where)
            except OSError as exc:  # the run is complete and reported: a warning, not a failure
                log(f"warning: history file {hist}: not appended ({exc.strerror or exc}); the "
                    f"run and its reports in {out_dir} are complete")
    return RunResult(out_dir, counts, a)


def check_history_writable(path: Path) -> None:
    """InputError naming the history file when it cannot be appended to. Nothing is left
    behind: an existing file is opened for appending, a missing one's folder gets a temporary
    file (some places, /proc among them, pass os.access and refuse the write itself)."""
    folder = next((d for d in path.parents if d.exists()), Path("."))
    problem = None
    if path.exists() and not path.is_file():
        problem = "it is not a file"
    elif not path.exists() and not folder.is_dir():
        problem = f"{folder} is not a folder"
    else:
        try:
            if path.exists():
                with open(path, "a", encoding="utf-8"):
                    pass
            else:  # the folder that would hold it, or the nearest existing one above
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".harness-check-"):
                    pass
        except OSError as exc:
            problem = f"it cannot be written ({exc.strerror or exc})"
    if problem:
        raise InputError(f"--history: {path}: {problem}; the run's history is appended there "
                         "when it completes (choose another file with --history or "
                         "$HARNESS_HISTORY)")


def _preload_reports() -> None:
    # While this thread imports, the event loop waits for the GIL on every answer it is woken
    # for: a short switch interval hands it back within 0.5 ms instead of 5 ms.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        with contextlib.suppress(Exception):
            import harness.report  # noqa: F401
    finally:
        sys.setswitchinterval(interval)


def _preloading(progress: Progress | None) -> Progress:
    """`progress`, which also starts importing pandas and the report code (about a second) in
    the background once the first answer is in: while the run waits on the network, not after
    it, and never before the first request is sent."""
    started = threading.Event()
    first: list[int] = []  # the count at the first call (a resumed run starts above 0)

    def report(done: int, total: int, info: str) -> None:
        if not first:
            first.append(done)
        if done > first[0] and not started.is_set():
            started.set()
            threading.Thread(target=_preload_reports, name="preload-reports", daemon=True).start()
        if progress is not None:
            progress(done, total, info)

    return report


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda n, _f: caught.append(n))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        signal.raise_signal(caught[0])


def _warn_missing(out_dir: Path, log: Log) -> None:
    for arm in read_meta(out_dir).arms:
        if arm.unavailable:
            log(f"warning: arm {arm.key}: {arm.unavailable}")  # each reason says what happened


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """Refuse an --out that is a file, that holds someone's files but no run, or (with
    `resume`) that holds no run; InputError before anything is written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out: {out_dir} exists and is not a folder")
    has_run = (out_dir / META).is_file()
    if resume and not has_run:
        raise InputError(f"--resume: {out_dir} holds no run to resume (no {META}); "
                         "drop --resume to start a new run there")
    if out_dir.is_dir() and not has_run:
        try:
            others = sorted(e.name for e in out_dir.iterdir() if e.name != LOCK)
        except OSError as exc:
            raise InputError(f"--out: cannot read {out_dir}: {exc.strerror or exc}") from None
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise InputError(f"--out: {out_dir} is not empty ({shown}) and holds no run; "
                             "choose a new or empty folder so that no file of yours is "
                             "overwritten")


def read_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, summary) DataFrames of a run folder: one row per example x arm, one per arm."""
    a = analyse(run_dir)
    return a.results, a.summary


def analyse(run_dir: str | Path) -> Analysis:
    """Every table and the verdict of a run folder, computed from its records (no model call)."""
    from harness.analysis.pipeline import analyse_columns

    d = Path(run_dir)
    return analyse_columns(read_columns(d), read_meta(d), d)


def write_reports(run_dir: str | Path, *, rescore: bool = False) -> Analysis:
    """Rebuild every report file of a run folder; `rescore` first scores each stored output again."""
    from harness.report import write_reports as _write

    return _write(Path(run_dir), rescore=rescore)


def gate(run_dir: str | Path, baseline: str | Path, *, max_drop: float | None = None,
         alpha: float | None = None, update: bool = False,
         allow_different: bool = False, match: str = "nearest",
         hash_ids: bool = False) -> GateResult:
    """Gate a run against a baseline (writes gate.md and junit.xml; see `harness.gating`).
    `match`: "nearest" (an arm whose k changed is gated against its strategy's baseline arm at
    the nearest k) or "exact" (by name only). `hash_ids` (with `update`): the baseline file
    keeps hashes of the example ids, not the ids.

    A baseline of another config name, task type or label set is refused (InputError) unless
    `allow_different`; an incomplete baseline run always is.
    """
    from harness.gating import run_gate

    return run_gate(Path(run_dir), Path(baseline), max_drop=max_drop, alpha=alpha, update=update,
                    allow_different=allow_different, match=match, hash_ids=hash_ids)


def eval_plan(cfg: Config | str | Path, *, pilot: str | Path | None = None, delta: float = 0.03,
              power: float = 0.8, alpha: float = 0.05) -> list[str]:
    """`harness plan`: what the config's eval can detect and the size it needs
    (analysis.planner), from a pilot run folder's discordance when given; no model call."""
    from harness.analysis.planning import plan_config, plan_lines

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    return plan_lines(plan_config(cfg, pilot=pilot, delta=delta, target=power, alpha=alpha),
                      cfg.name)


def distill(cfg: Config | str | Path, teacher: str, student: str, *,
            out: str | Path | None = None, unlabeled: str | Path | None = None,
            min_confidence: float | None = None, progress: LossProgress | None = None,
            log: Log = lambda _m: None, base_urls: dict[str, str | list[str]] | None = None,
            confirm: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Distil the teacher strategy into a fine-tuned student (training.distill): label the
    unlabeled pool, fine-tune and register the student, evaluate it beside the teacher; write
    OUT/eval's reports and OUT/distill.json (each arm's accuracy, teacher agreement, cost per
    1k queries and latency), and return that summary.

    Paid work (a teacher on a provider, a provider's fine-tuning job) waits for `confirm`
    (given the estimate; False: RunError, nothing requested), as `finetune` does; without
    `confirm` the call itself is the consent. A teacher that is the student, or answers with
    the student's own model, is refused (InputError)."""
    from harness.files import write_json_atomic
    from harness.report import write_reports
    from harness.training.distill import distill as _distill

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    out_dir = Path(out) if out is not None else Path("reports") / f"{cfg.name}-distill"
    summary = _distill(cfg, teacher, student, out=out_dir,
                       unlabeled=Path(unlabeled) if unlabeled is not None else None,
                       min_confidence=min_confidence, progress=progress, log=log,
                       base_urls=base_urls, confirm=confirm)
    a = write_reports(out_dir / "eval")
    for _, row in a.summary.iterrows():
        arm = summary["arms"].get(str(row["strategy"]))
        if arm is not None:
            for key in ("cost_per_1k", "latency_p50_ms"):  # NaN (unknown, all cached): null
                value = float(row[key])
                arm[key] = None if math.isnan(value) else value
    write_json_atomic(out_dir / "distill.json", summary)
    return summary


def finetune(cfg: Config | str | Path, strategy: str | None = None, *, out: str | Path | None = None,
             progress: LossProgress | None = None, log: Log = lambda _m: None,
             force: bool = False, confirm: Callable[[str], bool] | None = None) -> FineTune:
    """Build training data for a fine_tuned strategy and train (or reuse) its model.

    Before a new paid job (provider not local) the estimate goes to `log` and to `confirm`,
    which must return True for the job to start (False: RunError, nothing started); without
    `confirm` the call itself is the consent. A `fine_tuned_model` of the provider-id form
    (`ft:...`) names an existing model and is refused (InputError).
    """
    from harness.training import finetune as _finetune

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    return _finetune(cfg, strategy, out=Path(out) if out is not None else None, progress=progress,
                     log=log, force=force, confirm=confirm)


def cancel_finetune(cfg: Config | str | Path, strategy: str | None = None, *,
                    log: Log = lambda _m: None) -> str | None:
    """`harness finetune --cancel`: cancel the provider's running fine-tuning job of this
    config's strategy (its data and settings) through the jobs API; the job id, or None when
    no job of it is running."""
    from harness.training.workflow import cancel

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    return cancel(cfg, strategy, log=log)
