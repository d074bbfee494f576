"""Tasks: the only code that knows what an answer looks like (see `Task`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.config import Prompts, TaskConfig
from harness.tasks.base import Score, Task
from harness.tasks.classification import ClassificationTask, check_schema


def _classification(task: TaskConfig, labels: Sequence[str]) -> Task:
    return ClassificationTask(tuple(labels), task.output_schema)


# task.type -> a builder from the task config and the label set; a plain dict, no plugins
TASKS: dict[str, Callable[[TaskConfig, Sequence[str]], Task]] = {
    "classification": _classification,
}

def _classification_problems(task: TaskConfig) -> list[str]:
    problem = check_schema(task.output_schema) if task.output_schema is not None else None
    return [problem] if problem else []


# task.type -> checks of the config that only the task can make (problem strings)
CONFIG_CHECKS: dict[str, Callable[[TaskConfig], list[str]]] = {
    "classification": _classification_problems,
}


def make_task(task: TaskConfig, labels: Sequence[str]) -> Task:
    """The Task object for a config's `task:` section."""
    return TASKS[task.type](task, labels)


def task_problems(task: TaskConfig) -> list[str]:
    """What is wrong with the task section for its task type (empty when fine)."""
    check = CONFIG_CHECKS.get(task.type)
    return check(task) if check else []


def task_from_meta(task_type: str, labels: Sequence[str], schema: dict[str, Any] | None) -> Task:
    """The Task of a recorded run (for re-scoring and analysis)."""
    return TASKS[task_type](TaskConfig(task_type, "", tuple(labels), schema, Prompts()), labels)


__all__ = ["TASKS", "ClassificationTask", "Score", "Task", "make_task", "task_from_meta",
           "task_problems"]
