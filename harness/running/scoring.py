"""One record from one answered example: the strategy's calls scored through the task."""

from __future__ import annotations

from dataclasses import asdict

from harness.dataset import Example
from harness.model.completion import is_endpoint_failure, request_failure
from harness.running.records import Record, score_confidence
from harness.strategies import Attempt, Strategy
from harness.tasks import Task, vote_outputs


def make_record(strategy: Strategy, example: Example, attempt: Attempt, task: Task) -> Record:
    """The record of one answered example: the final call's output scored through the task,
    or for a vote (Attempt.voted) every sample scored and the majority taken (tasks.vote_outputs).
    An endpoint failure on any sample makes the example an endpoint failure (the answered samples
    stay cached, so asking again pays only for the failed one)."""
    arm, final = strategy.arm, attempt.final
    comp = final.completion
    failures = [request_failure(c.completion) for c in attempt.calls]
    failed = next((f for f in failures if f is not None and is_endpoint_failure(f[0])),
                  failures[-1] if not attempt.voted else None)
    kind: str | None
    lenient, share, sample_correct, output = False, None, None, comp.content or ""
    confidence = None
    if failed is not None:
        prediction, correct, parse_ok, valid, (kind, detail) = None, False, False, False, failed
    else:
        if attempt.voted:
            s, share, sample_correct, output = vote_outputs(
                task, [(c.completion.content, c.completion.finish_reason, f)
                       for c, f in zip(attempt.calls, failures, strict=True)], example.target)
        else:
            s = task.score(comp.content, comp.finish_reason, example.target)
            confidence = score_confidence(task, s, output, comp.logprobs)
        prediction, correct, parse_ok, valid = s.prediction, s.correct, s.parse_ok, s.schema_valid
        kind, detail, lenient = s.error_kind, s.error, s.lenient
    calls = tuple({"model_id": c.model_id, **asdict(c.completion)} for c in attempt.calls) \
        if len(attempt.calls) > 1 else ()
    return Record(
        arm=arm.key, strategy=arm.strategy, type=arm.type, model=arm.model, model_id=final.model_id,
        k=arm.k, draw=arm.draw, example_id=example.id, input=example.input,
        expected=example.target, prediction=prediction, correct=correct, parse_ok=parse_ok,
        schema_valid=valid, error_kind=kind, error=detail, output=output,
        finish_reason=comp.finish_reason,
        prompt_tokens=_total(attempt, "prompt_tokens"),
        completion_tokens=_total(attempt, "completion_tokens"),
        cached_tokens=_total(attempt, "cached_tokens"),
        latency_ms=round(sum(c.completion.latency_ms for c in attempt.calls), 2),
        attempts=sum(c.completion.attempts for c in attempt.calls),
        replica=comp.replica, batch_id=comp.batch_id, shots=attempt.shots,
        cached=all(c.completion.cached for c in attempt.calls),
        prompt_sha256=arm.prompt_sha256, calls=calls, lenient=lenient,
        vote_share=share, sample_correct=sample_correct, confidence=confidence,
        logprobs=comp.logprobs if not attempt.voted else None,
    )


def _total(attempt: Attempt, name: str) -> int | None:
    values = [getattr(c.completion, name) for c in attempt.calls]
    known = [v for v in values if v is not None]
    return sum(known) if known else None
