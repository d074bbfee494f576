"""The regression gate inside a pytest suite: a pytest plugin (entry point ``pytest11``).

    from harness.testing import assert_gate

    def test_routing_prompt_has_not_regressed(harness_run):
        run = harness_run("configs/routing.yaml", "reports/routing")  # reused once finished
        assert_gate(run, "baselines/routing.json", max_drop=0.02)

`assert_gate` is `harness gate` (harness.gating: the same tests, thresholds and gate.md /
junit.xml files); a failing gate raises `GateFailed`, an AssertionError whose message is the
gate's table, so pytest reports the table at the test's own line, not a traceback into harness.
The `harness_run` fixture is `reuse_or_run`: a finished run of the config in `out` is returned
as it is (no model is asked), anything else is run (or resumed) with `harness.api.run`, whose
consent rules apply unchanged: the config's `run.max_cost_usd` and `train_if_missing` are its
own, and this plugin adds no confirmation of its own. The run's log lines go to the
``harness.testing`` logger (pytest shows them with a failing test).

Importing this module is cheap (pytest loads it in every session): harness is imported when a
function is first called.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.config import Config
    from harness.gating import GateResult

__all__ = ["GateFailed", "RunOrReuse", "assert_gate", "finished_run", "harness_run", "reuse_or_run"]

logger = logging.getLogger("harness.testing")
RunOrReuse = Callable[..., Path]


class GateFailed(AssertionError):
    """A gate that failed; str() is the gate's table (Markdown, as `harness gate` prints it)."""

    def __init__(self, result: GateResult) -> None:
        from harness.gating import markdown

        super().__init__(markdown(result).rstrip("\n"))
        self.result = result


def assert_gate(run_dir: str | Path, baseline: str | Path, *, max_drop: float | None = None,
                alpha: float | None = None, allow_different: bool = False,
                match: str = "nearest") -> GateResult:
    """Gate a run folder against a baseline (`harness.api.gate`, which also writes gate.md and
    junit.xml into the run folder); return the result when it passes.

    A failing gate (a significant drop of more than `max_drop`, a metric below a floor, a
    vanished arm, an incomplete run) raises `GateFailed` carrying the table. `match` pairs the
    arms with the baseline's as `harness gate --match` does (nearest k, or exact names). `max_drop` and
    `alpha` default to the config's `gate` section, then 0.02 / 0.05. Bad input (no run
    folder, an unreadable baseline, a baseline of another config) raises InputError.
    """
    __tracebackhide__ = True
    from harness.api import gate

    result = gate(run_dir, baseline, max_drop=max_drop, alpha=alpha,
                  allow_different=allow_different, match=match)
    if not result.passed:
        raise GateFailed(result)
    return result


def finished_run(cfg: Config, out: Path) -> bool:
    """Whether `out` holds a complete run that `cfg` would continue (the resume check of
    `harness run`, harness.running.resume): then it has nothing left to ask a model.

    False for a folder with no run or an unfinished one; InputError for a folder holding a run
    this config's answers would not reproduce (as `harness run` refuses it)."""
    from harness.running.plan import build_meta, plan
    from harness.running.resume import check_resumable

    if not out.is_dir():
        return False
    old = check_resumable(out, build_meta(plan(cfg)))
    return old is not None and old.status == "complete"


def _log(line: str) -> None:
    (logger.warning if line.startswith("warning:") else logger.info)(line)


def reuse_or_run(config: str | Path | Config, out: str | Path, *, use_cache: bool = True,
                 base_urls: dict[str, str | list[str]] | None = None, allow_missing: bool = False,
                 keep_failures: bool = False, history: str | Path | None = None) -> Path:
    """The run folder `out` holding a finished run of `config` (a path or a loaded Config).

    A complete run of this config there (see `finished_run`) is returned as it is, without a
    model request or a file written; otherwise `harness.api.run` runs into `out` (resuming an
    unfinished run of the config), with the options given, and the folder is returned. Calling
    it is the consent to the run's requests, as calling `harness.api.run` is.
    InputError: a config that does not load, an `out` that is a file or holds another run.
    """
    from harness.api import load_config, run
    from harness.config import Config

    cfg = config if isinstance(config, Config) else load_config(config)
    out_dir = Path(out)
    if finished_run(cfg, out_dir):
        logger.info("%s: a finished run of %s; reused (no model asked)", out_dir, cfg.name)
        return out_dir
    return run(cfg, out_dir, use_cache=use_cache, base_urls=base_urls, allow_missing=allow_missing,
               keep_failures=keep_failures, history=history, log=_log).out


@pytest.fixture(scope="session")
def harness_run() -> RunOrReuse:
    """`reuse_or_run(config, out, **options) -> Path`: a finished run of the config in `out`,
    reused when it is already there (no model asked), else run with `harness.api.run`."""
    return reuse_or_run
