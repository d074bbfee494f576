"""What a run did (`Counts`) and how it ended when it did not finish (the exceptions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.errors import RunError
from harness.model.completion import is_endpoint_failure


class RunInterrupted(RunError):
    """Ctrl-C or SIGTERM: the run stopped cleanly; what finished is on disk."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a CI cancel, `docker stop`), raised like Ctrl-C so a run stops the
    same clean way: records kept, run.json marked interrupted, partial reports written."""


class RunIncomplete(RunError):
    """The run finished its requests but may not be trusted as complete (exit code 1)."""


@dataclass
class Counts:
    """What a run did, for the user and the metadata."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    skipped_done: int = 0
    rerequested: int = 0  # endpoint failures of an earlier attempt, requested again
    by_error: dict[str, int] = field(default_factory=dict)
    retries_by_kind: dict[str, int] = field(default_factory=dict)

    endpoint_failures: int = 0  # of `failures`: the endpoint's, not the model's
    not_requested: int = 0  # of `failures`: never sent, the arm's model being unavailable
    spent_usd: float = 0.0  # the known cost of this invocation's requests

    def failure(self, kind: str, attempts: int = 1) -> None:
        """Count one failed example (`attempts` 0: nothing was sent for it)."""
        self.failures += 1
        if kind == "model_unavailable" and attempts == 0:
            self.not_requested += 1
        else:
            self.endpoint_failures += is_endpoint_failure(kind)
        self.by_error[kind] = self.by_error.get(kind, 0) + 1
