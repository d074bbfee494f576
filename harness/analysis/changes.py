"""Changes: *what changed between two runs, or since a baseline?* Per arm its prompt hash,
model id and k, and the config keys whose values differ. The gate lists these in gate.md and `harness diff`
shows them; both read the same record (`Context`) of a run or a baseline file.

A config's keys are its YAML's leaf paths (`run.temperature`, `strategies[few-shot].shots`: a
strategy is named by its `name`, a list of values is one leaf). A baseline file keeps each
value as it is when it is a number, a boolean, null, a short one-line string or a short list
of these, and as
`sha256:` and 12 hex digits of its JSON otherwise (long instructions, label lists), so the
committed file holds no prompt text: a change of such a key is reported without its values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.running.records import RunMeta
from harness.strategies import arm_name

SHORT = 40  # longest string a baseline keeps as it is
HASHED = "sha256:"


class Paired(Protocol):
    """What pairing needs of an arm: its display name, strategy, type and k."""

    @property
    def name(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def k(self) -> int: ...


@dataclass(frozen=True)
class ArmContext:
    """What an arm ran: its prompt (hash of the rendered template), model and k."""

    prompt_sha256: str | None
    model_id: str | None
    k: int


@dataclass(frozen=True)
class Context:
    """What a run (or the run behind a baseline) was made of; empty when not recorded."""

    arms: Mapping[str, ArmContext] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)  # leaf path -> value (or its hash)
    recorded: bool = False  # False: an older baseline file or a summary.json, which lack it

    def to_dict(self) -> dict[str, Any]:
        """The baseline file's keys `arm_context` (per arm: prompt hash, model id, k) and
        `config` (leaf path -> value or hash)."""
        return {"arm_context": {n: {"prompt_sha256": a.prompt_sha256, "model_id": a.model_id,
                                    "k": a.k} for n, a in self.arms.items()},
                "config": dict(self.config)}


def _leaves(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _leaves(sub, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "name" in v
                                                   for v in value):
        for item in value:  # strategies: keyed by their name, not their place in the list
            _leaves({k: v for k, v in item.items() if k != "name"}, f"{path}[{item['name']}]", out)
    else:
        out[path] = value


def kept(value: Any) -> Any:
    """A config value as a baseline file keeps it: itself when short, else its hash."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and len(value) <= SHORT and "\n" not in value:
        return value
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if (isinstance(value, list) and len(text) <= SHORT
            and all(v is None or isinstance(v, bool | int | float | str) for v in value)):
        return value  # a short list of scalars (shots: [1, 2, 4])
    return HASHED + hashlib.sha256(text.encode()).hexdigest()[:12]


def config_leaves(raw: Mapping[str, Any], *, keep_all: bool = False) -> dict[str, Any]:
    """The config's leaf paths and values (`kept` unless `keep_all`)."""
    out: dict[str, Any] = {}
    _leaves(raw, "", out)
    return out if keep_all else {k: kept(v) for k, v in out.items()}


def run_context(meta: RunMeta, *, keep_all: bool = False) -> Context:
    """A run's context from its run.json: each arm's first draw, and its config's leaves."""
    arms: dict[str, ArmContext] = {}
    for a in meta.arms:
        name = arm_name(a.strategy, a.k, a.type)
        arms.setdefault(name, ArmContext(a.prompt_sha256, a.model_id, a.k))
    return Context(arms, config_leaves(meta.config_raw, keep_all=keep_all), True)


def context_from(data: Mapping[str, Any]) -> Context:
    """A baseline file's context (`arm_context`, `config`; an empty, unrecorded one when it has
    neither: a file written before they were)."""
    if not isinstance(data.get("arm_context"), Mapping):
        return Context()
    arms = {str(n): ArmContext(a.get("prompt_sha256"), a.get("model_id"), int(a.get("k", 0)))
            for n, a in data["arm_context"].items()}
    return Context(arms, dict(data.get("config") or {}), True)


def _show(value: Any) -> str:
    if isinstance(value, str) and value.startswith(HASHED):
        return "(long value)"
    return json.dumps(value, ensure_ascii=False)


def config_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One line per config key that differs: `key: old -> new` (long values unnamed)."""
    keep_b, keep_a = {k: kept(v) for k, v in before.items()}, {k: kept(v) for k, v in after.items()}
    lines = []
    for key in sorted(set(keep_b) | set(keep_a)):
        if keep_b.get(key, ...) == keep_a.get(key, ...):
            continue
        if key not in keep_b:
            lines.append(f"{key}: added ({_show(keep_a[key])})")
        elif key not in keep_a:
            lines.append(f"{key}: removed (was {_show(keep_b[key])})")
        elif HASHED in f"{keep_b[key]}{keep_a[key]}":
            lines.append(f"{key}: changed")
        else:
            lines.append(f"{key}: {_show(keep_b[key])} -> {_show(keep_a[key])}")
    return lines


def arm_changes(before: Context, after: Context, pairs: Mapping[str, str]) -> list[str]:
    """One line per compared arm (`pairs`: arm now -> the arm it is compared with) whose k,
    prompt or model changed."""
    lines = []
    for now, was in pairs.items():
        a, b = after.arms.get(now), before.arms.get(was)
        if a is None or b is None:
            continue
        parts = []
        if a.k != b.k:
            parts.append(f"k={b.k} -> k={a.k}")
        if a.prompt_sha256 and b.prompt_sha256 and a.prompt_sha256 != b.prompt_sha256:
            parts.append(f"prompt {b.prompt_sha256[:12]} -> {a.prompt_sha256[:12]}")
        if a.model_id and b.model_id and a.model_id != b.model_id:
            parts.append(f"model {b.model_id} -> {a.model_id}")
        if parts:
            lines.append(f"{now if now == was else f'{was} -> {now}'}: {', '.join(parts)}")
    return lines


def changes(before: Context, after: Context, pairs: Mapping[str, str]) -> list[str]:
    """Everything that changed (arms first, then config keys); empty when nothing did."""
    return [*arm_changes(before, after, pairs),
            *(f"config {line}" for line in config_changes(before.config, after.config))]


def pair_arms(base: Mapping[str, Paired], current: Mapping[str, Paired], *,
              match: str = "nearest") -> dict[str, str]:
    """Arm now -> the earlier arm it is compared with (the gate's baseline arm, `harness diff`'s
    run A arm). `exact`: the arm of the same name.
    `nearest` (the default): the same name where the baseline has it; else, for an arm whose k
    changed, the baseline arm of the same strategy and type, not otherwise paired, at the
    nearest k (pairs taken closest first; a tie goes to the smaller k now, then the larger k
    then), so `few-shot@k=8 -> few-shot@k=2` is a change of one arm, not a new arm and a
    missing one."""
    pairs = {n: n for n in current if n in base}
    if match == "exact":
        return pairs
    free_now = [a for n, a in current.items() if n not in pairs]
    free_base = [a for n, a in base.items() if n not in pairs.values()]
    candidates = sorted((abs(a.k - b.k), a.k, -b.k, a.name, b.name) for a in free_now
                         for b in free_base if (a.strategy, a.type) == (b.strategy, b.type))
    for *_, now, was in candidates:
        if now not in pairs and was not in pairs.values():
            pairs[now] = was
    return pairs
