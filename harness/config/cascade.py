"""`type: cascade` strategies: route each example from a primary arm to a fallback arm when
the primary's confidence is below a threshold. A cascade sends no request: it is computed from
the two arms' records (analysis/cascade.py), so it is read from the config's raw strategies
both when the config loads (to check it) and when a run folder is analysed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.kinds import FEW_SHOT, ArmId

if TYPE_CHECKING:  # (types imports CascadeConfig from here)
    from harness.config.types import StrategyConfig

CASCADE_KEYS = frozenset({"name", "type", "primary", "fallback", "thresholds"})


@dataclass(frozen=True)
class CascadeConfig:
    """One cascade: `primary` answers; below confidence t, `fallback` answers instead."""

    name: str
    primary: str  # a strategy name, or an arm's display name (few-shot@k=4)
    fallback: str
    thresholds: tuple[float, ...] | None  # None: `auto` (from the primary's confidences)


def is_cascade(d: Any) -> bool:
    """True for a raw strategy entry of type cascade."""
    return isinstance(d, Mapping) and d.get("type") == "cascade"


def parse_cascade(i: int, d: Mapping[str, Any], arms: Sequence[str], problems: list[str]
                  ) -> CascadeConfig:
    """`strategies[i]` of type cascade; `arms` are the names its primary and fallback may take
    (the other strategies' names and their arms' display names)."""
    where = f"strategies[{i}]"
    extra = sorted(set(d) - CASCADE_KEYS)
    if extra:
        problems.append(f"{where}: {', '.join(extra)} do not apply to type cascade (it sends no "
                        "request; give primary, fallback and thresholds)")
    for key in ("primary", "fallback"):
        if key not in d:
            problems.append(f"{where}.{key}: required for type cascade")
        elif d[key] not in arms:
            problems.append(f"{where}.{key}: no strategy or arm named {d[key]!r} (have: "
                            f"{', '.join(arms)})")
    if d.get("primary") is not None and d.get("primary") == d.get("fallback"):
        problems.append(f"{where}: primary and fallback are the same arm")
    raw = d.get("thresholds", "auto")
    thresholds: tuple[float, ...] | None = None
    if raw != "auto":
        thresholds = tuple(sorted({float(t) for t in raw}))
    return CascadeConfig(str(d["name"]), str(d.get("primary", "")), str(d.get("fallback", "")),
                         thresholds)


def arm_strategies(strategies: Sequence[StrategyConfig]) -> dict[str, StrategyConfig]:
    """What a cascade's primary and fallback may name, each with its strategy: a strategy with
    one arm, or an arm's display name (few-shot@k=4; variants as STRATEGY:VARIANT)."""
    out: dict[str, StrategyConfig] = {}
    for s in strategies:
        for b in [ArmId(s.name), *(ArmId(s.name, v.name) for v in s.variants)]:
            out.update({str(ArmId(b.strategy, b.variant, k)): s for k in s.shots}
                       if s.type == FEW_SHOT else {str(b): s})
            if s.type == FEW_SHOT and len(s.shots) == 1:
                out.setdefault(str(b), s)
    return out


def confidence_problems(raw: Sequence[Any], strategies: Sequence[StrategyConfig]) -> list[str]:
    """A cascade routes on its primary's confidence: a primary that records none (no
    `confidence:`, a single sample) would send every answer to the fallback at every
    threshold. One problem per such cascade of the raw `strategies:` list."""
    arms = arm_strategies(strategies)
    out = []
    for i, d in enumerate(raw):
        primary = arms.get(d.get("primary")) if is_cascade(d) else None
        if primary is not None and primary.confidence is None and primary.samples < 2:
            out.append(f"strategies[{i}] ({d.get('name')}).primary: {d['primary']} records no "
                       "confidence, so the cascade would send every answer to the fallback at "
                       f"every threshold; set confidence: logprob on strategy {primary.name} "
                       "(or samples: 5 with confidence: agreement)")
    return out


def cascades_from_raw(raw: Mapping[str, Any]) -> tuple[CascadeConfig, ...]:
    """The cascades of a run's raw config (already checked when the run's config loaded)."""
    out = []
    for i, d in enumerate(raw.get("strategies") or ()):
        if is_cascade(d):
            out.append(parse_cascade(i, d, [str(d.get("primary")), str(d.get("fallback"))], []))
    return tuple(out)


__all__ = ["CascadeConfig", "arm_strategies", "cascades_from_raw", "confidence_problems",
           "is_cascade", "parse_cascade"]
