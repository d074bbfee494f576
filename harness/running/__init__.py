"""Running: typed versioned records (`records`), the result store, the plan and the runner."""

from harness.running.outcome import Counts, RunInterrupted
from harness.running.plan import Plan, build_meta, default_out_dir, plan
from harness.running.records import FORMAT_VERSION, ArmMeta, DatasetMeta, Record, RunMeta
from harness.running.runner import Runner
from harness.running.store import META, RESULTS, ResultStore, read_meta, read_records, write_meta

__all__ = ["FORMAT_VERSION", "META", "RESULTS", "ArmMeta", "Counts", "DatasetMeta", "Plan",
           "Record", "ResultStore", "RunInterrupted", "RunMeta", "Runner", "build_meta",
           "default_out_dir", "plan", "read_meta", "read_records", "write_meta"]
