"""Stored scores checked against the records' own answers: a `correct` that the record's
prediction and expected value contradict (a hand-edited results.jsonl, or one scored by other
code) is refused, naming its line, instead of moving the accuracy silently.

A record's `correct` is, by the one rule every task scores with: no error kind, a schema-valid
answer, and a prediction the task finds equal to the expected value (`Task.is_correct`). The
check compares the stored `correct` with that, from the stored prediction alone (no output is
parsed again: that is `harness report RUN --rescore`, which rewrites the scores and so is not
checked first).
"""

from __future__ import annotations

import json
from itertools import compress
from operator import eq
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.running.records import RunMeta
from harness.tasks import ClassificationTask, ExtractionTask, Task, task_from_meta


def meta_task(meta: RunMeta) -> Task:
    """The task of a recorded run (its type, labels, schema and `task.match` rules)."""
    return task_from_meta(meta.task_type, meta.labels, meta.output_schema or None,
                          dict(meta.config.match) or None)


def score_problem(task: Task, correct: Any, prediction: Any, expected: Any, schema_valid: Any,
                  error_kind: Any) -> str | None:
    """Why a record's stored `correct` contradicts its own prediction and expected value, or
    None when it is what the task would say (or the expected value is not one of the task's:
    run.json then describes other records, which the readers refuse in their own words)."""
    if not _fits(task, expected):
        return None
    if correct is True:
        if schema_valid is True and not task.is_correct(prediction, expected):
            return (f"correct is true but prediction {_show(prediction)} does not match "
                    f"expected {_show(expected)}")
        if error_kind is not None:
            return f"correct is true but the record is a failure (error_kind {error_kind!r})"
        if schema_valid is not True:
            return "correct is true but the answer is not schema-valid (schema_valid false)"
    elif error_kind is None and schema_valid is True and task.is_correct(prediction, expected):
        return (f"correct is false but prediction {_show(prediction)} matches expected "
                f"{_show(expected)}")
    return None


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) or value is None else json.dumps(
        value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _agree(cols: dict[str, list[Any]], task: Task) -> bool:
    """Whether every row's `correct` is the one the task's rule gives (see the module)."""
    correct, kinds, valid = cols["correct"], cols["error_kind"], cols["schema_valid"]
    predicted, expected = cols["prediction"], cols["expected"]
    if type(task) is ClassificationTask:  # its rule is prediction == expected: C-level passes
        if (list(map(eq, predicted, expected)) == correct and set(compress(kinds, correct)) <= {None}
                and set(compress(valid, correct)) <= {True}):
            return True  # the usual file: right exactly where the label matches, and valid
        want = [k is None and v is True and p == e
                for k, v, p, e in zip(kinds, valid, predicted, expected, strict=True)]
    else:
        rule = task.is_correct
        want = [k is None and v is True and rule(p, e)
                for k, v, p, e in zip(kinds, valid, predicted, expected, strict=True)]
    stored = [c is True for c in correct]  # (a null `correct` reads as false)
    if want == stored:
        return True
    return all(w == c for w, c, e in zip(want, stored, expected, strict=True) if _fits(task, e))


def _fits(task: Task, expected: Any) -> bool:
    """Whether `expected` is a gold answer of the task's kind: an object for extraction, a
    label for classification."""
    return isinstance(expected, dict if isinstance(task, ExtractionTask) else str)


def check_scores(run_dir: Path, cols: dict[str, list[Any]], meta: RunMeta) -> None:
    """InputError naming the first line of `run_dir`'s results.jsonl whose `correct` its own
    prediction and expected value contradict (see the module); `cols` are its columns
    (store.read_columns). A few tight passes over the columns; the file is read again only to
    name the line of a mismatch."""
    if not cols["correct"]:
        return
    task = meta_task(meta)
    if _agree(cols, task):
        return
    path = run_dir / "results.jsonl"
    found = _first_problem(path, task)
    if found is not None:
        raise InputError(f"{path} line {found[0]}: {found[1]}; the file was edited or scored by "
                         f"other code: rebuild it with `harness report {run_dir} --rescore` "
                         "(scores every stored answer again)")


def _first_problem(path: Path, task: Task) -> tuple[int, str] | None:
    """(line number, problem) of the first kept record (the last write of its arm and
    example) whose score its answer contradicts; None if none does."""
    last: dict[tuple[Any, str], tuple[int, dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith("\n") or not line.strip():
                continue
            data = json.loads(line)
            last[(data["arm"], str(data["example_id"]))] = (number, data)
    for number, data in sorted(last.values(), key=lambda kv: kv[0]):
        why = score_problem(task, data["correct"], data.get("prediction"), data.get("expected"),
                            data.get("schema_valid"), data.get("error_kind"))
        if why is not None:
            return number, why
    return None


__all__ = ["check_scores", "meta_task", "score_problem"]
