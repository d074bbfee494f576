"""Running: typed versioned records (`records`), the result store, the plan and the runner.

The runner (and with it the model layer and the openai SDK) loads on first use of `Runner`, so
that reading a run folder (`harness report`) does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.running.outcome import Counts, RunInterrupted
from harness.running.plan import Plan, build_meta, default_out_dir, plan
from harness.running.records import FORMAT_VERSION, ArmMeta, DatasetMeta, Record, RunMeta
from harness.running.store import META, RESULTS, ResultStore, read_meta, read_records, write_meta

if TYPE_CHECKING:
    from harness.running.runner import Runner

__all__ = ["FORMAT_VERSION", "META", "RESULTS", "ArmMeta", "Counts", "DatasetMeta", "Plan",
           "Record", "ResultStore", "RunInterrupted", "RunMeta", "Runner", "build_meta",
           "default_out_dir", "plan", "read_meta", "read_records", "write_meta"]


def __getattr__(name: str) -> Any:
    if name == "Runner":
        from harness.running.runner import Runner

        return Runner
    raise AttributeError(f"module 'harness.running' has no attribute {name!r}")
