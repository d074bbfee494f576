"""Tasks: the only code that knows what an answer looks like (see `Task`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.config import Prompts, TaskConfig
from harness.dataset import Targets
from harness.kinds import CLASSIFICATION, EXTRACTION
from harness.tasks.base import Score, Task, has_fields
from harness.tasks.classification import ClassificationTask, check_schema
from harness.tasks.extraction import MATCHES, ExtractionTask
from harness.tasks.extraction import check_schema as check_extraction_schema
from harness.tasks.fields import match_problems
from harness.tasks.reasoning import ReasoningFirst
from harness.tasks.vote import Vote, vote, vote_outputs


def _classification(task: TaskConfig, labels: Sequence[str]) -> Task:
    return ClassificationTask(tuple(labels), task.output_schema)


def _extraction(task: TaskConfig, labels: Sequence[str]) -> Task:
    return ExtractionTask(dict(task.output_schema or {}), dict(task.match))


# task.type (a key of harness.kinds.TASK_KINDS, every one) -> a builder from the task config
# and the label set; a plain dict, no plugins
TASKS: dict[str, Callable[[TaskConfig, Sequence[str]], Task]] = {
    CLASSIFICATION: _classification,
    EXTRACTION: _extraction,
}


def _classification_problems(task: TaskConfig) -> list[str]:
    problem = check_schema(task.output_schema) if task.output_schema is not None else None
    return [problem] if problem else []


def _extraction_problems(task: TaskConfig) -> list[str]:
    problem = check_extraction_schema(task.output_schema)
    if problem:
        return [problem]
    # keys: top-level fields or leaf paths (address.city); `set` on arrays only
    return match_problems(task.output_schema or {}, task.match) + [
        f"task.match.{name}: unknown rule {rule!r} (one of {', '.join(MATCHES)})"
        for name, rule in task.match.items() if rule not in MATCHES]


# task.type -> checks of the config that only the task can make (problem strings)
CONFIG_CHECKS: dict[str, Callable[[TaskConfig], list[str]]] = {
    CLASSIFICATION: _classification_problems,
    EXTRACTION: _extraction_problems,
}


def gold_reader(task: TaskConfig) -> Targets | None:
    """How the data's gold answers are read for this task type (None: labels, as strings)."""
    if task.type == EXTRACTION:
        return ExtractionTask(dict(task.output_schema or {}), dict(task.match)).targets()
    return None


def make_task(task: TaskConfig, labels: Sequence[str]) -> Task:
    """The Task object for a config's `task:` section."""
    return TASKS[task.type](task, labels)


def task_problems(task: TaskConfig) -> list[str]:
    """What is wrong with the task section for its task type (empty when fine)."""
    check = CONFIG_CHECKS.get(task.type)
    return check(task) if check else []


def task_from_meta(task_type: str, labels: Sequence[str], schema: dict[str, Any] | None,
                   match: dict[str, str] | None = None) -> Task:
    """The Task of a recorded run (for re-scoring and analysis)."""
    cfg = TaskConfig(task_type, "", tuple(labels), schema, Prompts(), dict(match or {}))
    return TASKS[task_type](cfg, labels)


__all__ = [
    "TASKS",
    "ClassificationTask",
    "ExtractionTask",
    "ReasoningFirst",
    "Score",
    "Task",
    "Vote",
    "gold_reader",
    "has_fields",
    "make_task",
    "task_from_meta",
    "task_problems",
    "vote",
    "vote_outputs",
]
