"""Self-consistency as a post-step: several scored samples of one example, one voted answer.

The vote goes through the task (`Task.vote`: classification takes the most frequent label,
extraction votes field by field), so this module knows nothing about what an answer is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.tasks.base import Score, Task


@dataclass(frozen=True)
class Vote:
    """The voted answer of one example and what the samples said."""

    score: Score  # the voted answer scored against the gold target (prediction: the vote)
    share: float  # samples whose answer equals the vote, over all samples: the confidence
    sample_correct: tuple[bool, ...]  # each sample's own correctness, in sample order


def vote(task: Task, samples: Sequence[Score], expected: Any) -> Vote:
    """Majority vote over the usable samples (parsed and schema-valid) of one example.

    Ties are the task's to break (deterministically: classification by label order,
    extraction by first appearance per field). With no usable sample nothing is voted: the
    first sample's failure is the answer, with share 0. The voted answer is compliant (it is
    rendered by the task itself); it counts as lenient when any sample needed the leniency.
    """
    if not samples:
        raise ValueError("a vote needs at least one sample")
    correct = tuple(s.correct for s in samples)
    usable = [s for s in samples if s.parse_ok and s.schema_valid]
    if not usable:
        return Vote(samples[0], 0.0, correct)
    winner = task.vote([s.prediction for s in usable])
    scored = task.score(task.render_target(winner), "stop", expected)
    share = sum(s.prediction == winner for s in usable) / len(samples)
    return Vote(replace(scored, lenient=any(s.lenient for s in usable)), share, correct)


# one sample as the record keeps it: (text, finish_reason, (kind, detail) when the request
# gave no answer to score, e.g. a refusal)
Sample = tuple[str | None, str | None, tuple[str, str | None] | None]


def vote_outputs(task: Task, samples: Sequence[Sample], expected: Any
                 ) -> tuple[Score, float, tuple[bool, ...], str]:
    """Score every sample through the task and vote (see `vote`): the voted Score, the vote
    share, each sample's correctness, and the answer's text (the vote rendered by the task;
    the first sample's text when nothing could be voted)."""
    scores = [task.score(text, finish, expected) if failed is None
              else Score(None, False, False, False, failed[0], failed[1])
              for text, finish, failed in samples]
    v = vote(task, scores, expected)
    text = task.render_target(v.score.prediction) if v.share else (samples[0][0] or "")
    return v.score, v.share, v.sample_correct, text


__all__ = ["Sample", "Vote", "vote", "vote_outputs"]
