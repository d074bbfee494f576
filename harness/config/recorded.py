"""The typed parts of a recorded run's config, parsed from the raw config its run.json stores
(`config.raw`, the YAML as parsed) without reading any file.

A full `Config` (load.parse_config) needs the files the config names (a labels file, an
output schema file, variant templates), which a run folder does not carry and which may have
changed or gone since the run; and a folder written by an older harness may hold a config the
current JSON Schema no longer accepts. What the answers came from is recorded in run.json
itself (labels, output schema, arms, models); what the analysis still needs of the config is
typed here: the task's `match` rules, `dataset.cluster`, each strategy's fine-tuned model and
`training_cost_usd`, and the cascades. Parsing is lenient the way a reader must be: an entry of
the wrong shape (a hand-edited run.json) reads as absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config.cascade import CascadeConfig, cascades_from_raw, is_cascade
from harness.config.strategy import fine_tuned_fields


@dataclass(frozen=True)
class RecordedStrategy:
    """One `strategies[i]` entry that is not a cascade, as far as a recorded run needs it."""

    name: str
    type: str
    model: str
    fine_tuned_model: str | None = None  # `fine_tuned_model` (its `name` when a mapping)
    train_if_missing: bool = False
    training_cost_usd: float | None = None  # what training cost (0: already paid); None: unknown


@dataclass(frozen=True)
class RecordedConfig:
    """The config of a recorded run, typed (see the module)."""

    name: str = ""
    task_type: str | None = None  # `task.type` as configured (run.json's task_type is the task run)
    match: Mapping[str, str] = field(default_factory=dict)  # `task.match`: field -> rule
    cluster: str | None = None  # `dataset.cluster`: the field naming each example's cluster
    strategies: tuple[RecordedStrategy, ...] = ()  # in config order, cascades left out
    cascades: tuple[CascadeConfig, ...] = ()  # `type: cascade` entries, in config order

    def strategy(self, name: str) -> RecordedStrategy | None:
        """The strategy called `name`, None when the config has none of that name."""
        return next((s for s in self.strategies if s.name == name), None)

    def training_cost_usd(self, strategy: str) -> float | None:
        """`fine_tuned_model.training_cost_usd` of the strategy; None when not given."""
        s = self.strategy(strategy)
        return None if s is None else s.training_cost_usd


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def recorded_strategy(d: Mapping[str, Any]) -> RecordedStrategy:
    """One raw non-cascade `strategies[i]` mapping, typed."""
    name, train, cost = fine_tuned_fields(d.get("fine_tuned_model"))
    return RecordedStrategy(str(d.get("name", "")), str(d.get("type", "")),
                            str(d.get("model", "")), _text(name), train, cost)


def recorded_config(raw: Mapping[str, Any]) -> RecordedConfig:
    """The typed config of a run from the raw config run.json stores (no file is read)."""
    raw = _mapping(raw)
    task, dataset = _mapping(raw.get("task")), _mapping(raw.get("dataset"))
    entries = raw.get("strategies")
    entries = entries if isinstance(entries, list) else []
    return RecordedConfig(
        name=str(raw.get("name", "")),
        task_type=_text(task.get("type")),
        match={str(k): str(v) for k, v in _mapping(task.get("match")).items()},
        cluster=_text(dataset.get("cluster")),
        strategies=tuple(recorded_strategy(s) for s in entries
                         if isinstance(s, Mapping) and not is_cascade(s)),
        cascades=cascades_from_raw({"strategies": entries}),
    )


__all__ = ["RecordedConfig", "RecordedStrategy", "recorded_config", "recorded_strategy"]
