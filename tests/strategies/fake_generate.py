"""A scripted `Generate`: queued completions come back in order, every call is recorded."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.model.completion import Completion
from harness.strategies.prompts import Message


@dataclass(frozen=True)
class GenerateCall:
    """One call a strategy made to the fake."""

    messages: list[Message]
    model_id: str
    sample: int


class FakeGenerate:
    """Satisfies `harness.strategies.Generate`; answers from a queue, never from a network."""

    def __init__(self) -> None:
        self._queue: deque[Completion] = deque()
        self.calls: list[GenerateCall] = []

    def enqueue(self, content: str | None, **completion_fields: Any) -> Completion:
        """Queue the next answer; returns the Completion that will be given back."""
        completion = Completion(content=content, **completion_fields)
        self._queue.append(completion)
        return completion

    @property
    def pending(self) -> int:
        """Queued completions not yet asked for."""
        return len(self._queue)

    async def __call__(self, messages: Sequence[Message], *, model_id: str,
                       sample: int = 0, temperature: float | None = None) -> Completion:
        self.calls.append(GenerateCall([dict(m) for m in messages], model_id, sample))
        if not self._queue:
            raise AssertionError(f"unexpected call #{len(self.calls)} to {model_id}: nothing queued")
        return self._queue.popleft()
