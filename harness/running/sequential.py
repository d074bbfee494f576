"""Sequential evaluation (`run.sequential`): the examples in a seeded order, requested in rounds
of `look_every` per arm; after each round, the comparisons behind the verdict are looked at
through anytime-valid intervals (analysis/sequential.py) and an arm whose part is settled gets
no more requests.

What is compared is a *unit*: a zero-shot or fine-tuned strategy, or one k of a few-shot sweep
(its draws' scores averaged per example). The comparisons:

- successive elimination among the prompting units: each against the current leader (the best
  running score); a unit is dropped once the leader is significantly better, or once the two
  are equivalent within `decision.equivalence_margin`;
- each fine-tuned unit against the leader: better, worse, or equivalent within the margin;
- each step k -> k' of a few-shot sweep: its interval wholly below `decision.min_gain` (flat),
  or its lower bound above 0 (a gain).
- with `decision.min_schema_compliance`, each unit's schema compliance against the floor: above
  or below it (a unit below cannot be recommended, so a prompting unit below leaves the running
  and a fine-tuned one is settled as not better).

The score compared is that of `decision.metric`: accuracy, or each example's own field F1
(sequential_order.observation). A clustered eval is observed a whole cluster at a time.

The family is every comparison that could be made (every pair of prompting units, every
fine-tuned unit with every prompting unit, every step), so the leader may change from look to
look: each interval is at alpha / m (Bonferroni). A unit is asked for more examples while any
comparison it takes part in is open. The run stops when no unit is, or the order is used up.

The same `Monitor`, fed the records of a finished run, recomputes the same stops: `harness
report` replays the looks from the run folder's `sequential.json` (the order and the design).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.analysis.sequential import Settled, bounds, log_wealth, settle, settle_floor
from harness.config import DecisionConfig, SequentialConfig
from harness.kinds import FEW_SHOT, FINE_TUNED
from harness.running.records import RunMeta
from harness.running.sequential_order import read_design


class ArmLike(Protocol):
    """What the monitor needs of an arm: a strategy.Arm or a records.ArmMeta."""

    @property
    def key(self) -> str: ...
    @property
    def strategy(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def k(self) -> int: ...


def unit_name(strategy: str, kind: str, k: int) -> str:
    """The unit a (strategy, type, k) is compared as: the strategy, and k for a few-shot arm
    (summary.csv's row)."""
    return f"{strategy}@k={k}" if kind == FEW_SHOT else strategy


def unit_of(arm: ArmLike) -> str:
    """The unit an arm is compared as (unit_name)."""
    return unit_name(arm.strategy, arm.type, arm.k)


def against_best(states: Sequence[str]) -> str:
    """A fine-tuned arm's place against the best prompt, from its comparisons with each
    prompting arm still in the running: better when better than all of them, worse when worse
    than any (so worse than the best), equivalent when none is better than it beyond the
    margin and it is not better than all; else open."""
    if not states:
        return "open"
    if "worse" in states:
        return "worse"
    if all(s == "better" for s in states):
        return "better"
    if all(s in ("better", "equivalent") for s in states):
        return "equivalent"
    return "open"


@dataclass(frozen=True)
class Comparison:
    """One comparison of the family, as of a look."""

    kind: str  # elimination | fine_tune | step
    first: str  # the unit whose score comes first in the difference
    second: str
    result: Settled


@dataclass
class Monitor:
    """The looks of one sequential run (live in the runner, or replayed from records)."""

    arms: Sequence[ArmLike]
    order: Sequence[str]
    design: SequentialConfig
    decision: DecisionConfig
    clusters: Mapping[str, str] | None = None  # example id -> its cluster (dataset.cluster)
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    valid: dict[str, dict[str, bool]] = field(default_factory=dict)  # answers matching the schema
    stopped_at: dict[str, int] = field(default_factory=dict)  # unit -> the look it stopped at
    eliminated: set[str] = field(default_factory=set)
    comparisons: list[Comparison] = field(default_factory=list)
    history: list[list[Comparison]] = field(default_factory=list)  # each look's comparisons
    look_index: int = -1  # the last look taken
    leader: str | None = None  # the prompting unit with the best mean at the last look
    # fine-tuned unit -> its place against the best prompt (better, worse, equivalent or open)
    against_best: dict[str, str] = field(default_factory=dict)
    # unit -> its schema compliance against decision.min_schema_compliance (above, below, open)
    floor_state: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.design.max_examples is not None:
            self.order = list(self.order)[: self.design.max_examples]
        self.members: dict[str, list[str]] = defaultdict(list)  # cluster -> its ids, in order
        if self.clusters:
            for i in self.order:
                self.members[self.clusters[i]].append(i)
        self.units: dict[str, list[str]] = defaultdict(list)
        for arm in self.arms:
            self.units[unit_of(arm)].append(arm.key)
        self.type = {unit_of(a): a.type for a in self.arms}
        self.sweeps: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for unit in self.units:
            arm = next(a for a in self.arms if unit_of(a) == unit)
            if arm.type == FEW_SHOT:
                self.sweeps[arm.strategy].append((arm.k, unit))
        prompting = [u for u in self.units if self.type[u] != FINE_TUNED]
        tuned = [u for u in self.units if self.type[u] == FINE_TUNED]
        steps = sum(max(0, len(s) - 1) for s in self.sweeps.values())
        floors = len(self.units) if self.decision.min_schema_compliance is not None else 0
        self.family = (math.comb(len(prompting), 2) + len(tuned) * len(prompting) + steps
                       + floors)
        self.prompting, self.tuned = prompting, tuned

    # ------------------------------------------------------------------ rounds
    @property
    def looks(self) -> int:
        """How many looks the order allows."""
        return math.ceil(len(self.order) / self.design.look_every)

    def round(self, look: int) -> list[str]:
        """The example ids of round `look`."""
        every = self.design.look_every
        return list(self.order[look * every:(look + 1) * every])

    def active(self) -> set[str]:
        """The units that still get examples."""
        return {u for u in self.units if u not in self.stopped_at}

    def active_arms(self) -> set[str]:
        """The arm keys that still get examples."""
        return {key for u in self.active() for key in self.units[u]}

    @property
    def finished(self) -> bool:
        """Whether nothing more is to be requested."""
        return not self.active() or self.look_index + 1 >= self.looks

    def note(self, arm: str, example_id: str, score: float | None, valid: bool = True) -> None:
        """One answered example (score None: an endpoint failure, no score) and whether its
        answer matched the output schema."""
        self.scores.setdefault(arm, {})[example_id] = score
        self.valid.setdefault(arm, {})[example_id] = valid

    # ------------------------------------------------------------------ looks
    def _unit_scores(self, unit: str, ids: Iterable[str], *, compliance: bool = False
                     ) -> dict[str, float]:
        """Per example of `ids`: the unit's score (its draws' mean), where every draw has one;
        with `compliance`, the share of its draws whose answer matched the schema instead."""
        out = {}
        arms = [self.scores.get(a, {}) for a in self.units[unit]]
        valid = [self.valid.get(a, {}) for a in self.units[unit]]
        for i in ids:
            values = [s.get(i) for s in arms]
            if values and all(v is not None for v in values):
                out[i] = (float(np.mean([v.get(i, False) for v in valid])) if compliance
                          else float(np.mean([v for v in values if v is not None])))
        return out

    def _observed(self, values: Mapping[str, float], ids: Sequence[str]) -> np.ndarray:
        """The observations the confidence sequence sees, in the order they arrived: one per
        example of `ids` that has a value; in a clustered eval, one per cluster whose examples
        have all been requested (the mean over those of them with a value), since examples of
        one cluster are not independent but clusters are."""
        if not self.clusters:
            return np.array([values[i] for i in ids if i in values])
        seen = set(ids)
        out = []
        for members in self.members.values():
            if not all(i in seen for i in members):
                continue
            got = [values[i] for i in members if i in values]
            if got:
                out.append(float(np.mean(got)))
        return np.array(out)

    def _differences(self, first: str, second: str, ids: Sequence[str]) -> np.ndarray:
        a, b = self._unit_scores(first, ids), self._unit_scores(second, ids)
        return self._observed({i: a[i] - b[i] for i in a if i in b}, ids)

    def _floor(self, unit: str, ids: Sequence[str], alpha: float) -> Settled:
        """The unit's schema compliance against decision.min_schema_compliance."""
        floor = float(self.decision.min_schema_compliance or 0.0)
        return settle_floor(self._observed(self._unit_scores(unit, ids, compliance=True), ids),
                            alpha, floor)

    def look(self, look: int) -> list[Comparison]:
        """Take look `look` (every round up to it answered): settle what can be settled, and
        stop the units that take part in no open comparison. Returns the comparisons made."""
        self.look_index = look
        seen = list(self.order[: (look + 1) * self.design.look_every])
        alpha = self.decision.alpha / max(1, self.family)
        margin = self.decision.equivalence_margin
        may_stop = len(seen) >= self.design.min_examples and self.family > 0
        made: list[Comparison] = []
        open_units: set[str] = set()
        if self.decision.min_schema_compliance is not None:
            for unit in self.units:
                r = self._floor(unit, seen, alpha)
                made.append(Comparison("compliance", unit, "floor", r))
                self.floor_state[unit] = r.state
                if not r.settled:
                    open_units.add(unit)
                elif r.state == "below" and may_stop and unit in self.prompting:
                    self.eliminated.add(unit)  # it cannot be recommended
        live = [u for u in self.prompting if u not in self.eliminated]
        means = {u: np.mean(list(v.values())) if (v := self._unit_scores(u, seen)) else -1.0
                 for u in live}
        if live:
            leader = max(live, key=lambda u: (means[u], -live.index(u)))
            for other in live:
                if other == leader:
                    continue
                r = settle(self._differences(leader, other, seen), alpha, margin=margin)
                made.append(Comparison("elimination", leader, other, r))
                if may_stop and r.state in ("better", "equivalent"):
                    self.eliminated.add(other)
                else:
                    open_units |= {leader, other}
            self.leader = leader
            for tuned in self.tuned:
                if self.floor_state.get(tuned) == "below":
                    self.against_best[tuned] = "below_floor"  # it cannot be recommended
                    continue
                against = [Comparison("fine_tune", tuned, other,
                                      settle(self._differences(tuned, other, seen), alpha,
                                             margin=margin))
                           for other in [leader, *(u for u in live if u != leader)]]
                made += against
                self.against_best[tuned] = against_best([c.result.state for c in against])
                if self.against_best[tuned] == "open":
                    open_units |= {tuned, *(c.second for c in against if not c.result.settled)}
        for sweep in self.sweeps.values():
            for (_, lower), (_, upper) in itertools.pairwise(sorted(sweep)):
                r = settle(self._differences(upper, lower, seen), alpha,
                           min_gain=self.decision.min_gain)
                made.append(Comparison("step", upper, lower, r))
                if not r.settled:
                    open_units |= {upper, lower}
        self.comparisons = made
        self.history.append(made)
        if may_stop and self.verdict_settled:
            open_units = set()  # "fine-tune, whatever the curve": nothing left can change it
        if may_stop:
            for unit in self.active() - open_units:
                self.stopped_at[unit] = look
        return made

    @property
    def verdict_settled(self) -> bool:
        """Whether the verdict can no longer change: every fine-tuned arm's place against the
        best prompt is settled and one of them is better than every prompting arm left (the
        decision rules recommend fine-tuning then, whatever the few-shot curve does)."""
        states = [self.against_best.get(t, "open") for t in self.tuned]
        floors_open = any(self.floor_state.get(t) == "open" for t in self.tuned)
        return bool(states) and "open" not in states and "better" in states and not floors_open

    def anytime(self, first: str, second: str, alpha: float
                ) -> tuple[int, float, float, float, float] | None:
        """(n, difference, low, high, p) of first - second over every pair on record, the
        interval from the confidence sequence at `alpha` and p the anytime-valid p-value
        min(1, 1 / max_t K_t(0)): both stay valid however the run stopped. None when either
        unit is not in this run or they share no scored example."""
        if first not in self.units or second not in self.units:
            return None
        d = self._differences(first, second, self.order)
        if not len(d):
            return None
        x = (np.clip(d, -1.0, 1.0) + 1) / 2
        lo, hi = bounds(x, alpha)
        p = min(1.0, math.exp(-float(np.max(log_wealth(x, 0.5)))))
        return len(d), float(d.mean()), 2 * lo - 1, 2 * hi - 1, p

    def settled_at(self) -> dict[tuple[str, str, str], int]:
        """(kind, first, second) -> the first look at which that comparison was settled."""
        out: dict[tuple[str, str, str], int] = {}
        for look, made in enumerate(self.history):
            for c in made:
                if c.result.settled:
                    out.setdefault((c.kind, c.first, c.second), look)
        return out

    def requested_by_unit(self) -> dict[str, int]:
        """Examples requested per unit (of its first draw: every draw is asked the same)."""
        return {u: len(self.scores.get(keys[0], {})) for u, keys in self.units.items()}

    @property
    def expected_records(self) -> int:
        """The records a finished run of these looks holds: per arm, every example of the
        rounds up to the look it stopped at (or of every look taken)."""
        every = self.design.look_every
        total = 0
        for unit, keys in self.units.items():
            last = self.stopped_at.get(unit, self.look_index)
            total += len(keys) * min(len(self.order), (last + 1) * every)
        return total

    def sentence(self, meta: RunMeta) -> str:
        """The verdict's sentence on the sequential design: where it settled, what it saved."""
        available = len(self.order) * sum(len(k) for k in self.units.values())
        requested = sum(len(self.scores.get(k, {})) for keys in self.units.values()
                        for k in keys)
        saved = available - requested
        longest = max(self.requested_by_unit().values(), default=0)
        # calls per answer (several with self-consistency samples), cached answers counted as
        # the calls they stood for: what the answers not asked for would have cost
        calls = (meta.counts.get("requests", 0) + meta.counts.get("cache_hits", 0)
                 if meta.counts else 0)
        per = calls / requested if requested and calls else 1.0
        spent = float(meta.counts.get("spent_usd", 0.0) or 0.0) if meta.counts else 0.0
        money = (f"saved about ${spent / requested * saved:,.4f}, " if spent and requested
                 else "")
        where = (f"settled after {longest} of {len(self.order)} examples" if not self.active()
                 else f"not settled after all {len(self.order)} examples")
        decisive = [c for c in self.comparisons if c.kind == "fine_tune" and c.second == self.leader]
        tail = "".join(
            f"; {c.first} against {c.second}: {c.result.state}, "
            f"{100 * c.result.estimate:+.1f} points, anytime-valid interval "
            f"[{100 * c.result.low:+.1f}, {100 * c.result.high:+.1f}] "
            f"(alpha {c.result.alpha:.3g} each)" for c in decisive)
        return (f"Sequential evaluation {where} ({money}{round(saved * per):,} requests not "
                f"made){tail}.")

    def summary(self) -> dict[str, Any]:
        """`summary.json -> sequential`: per arm what was requested against what the eval has,
        the look at which it stopped, and each comparison as of the last look."""
        available = len(self.order)
        settled = self.settled_at()
        arms = {}
        for unit, keys in self.units.items():
            for key in keys:
                requested = len(self.scores.get(key, {}))
                arms[key] = {"unit": unit, "requested": requested, "available": available,
                             "stopped_at_look": self.stopped_at.get(unit)}
        return {
            "enabled": True, "look_every": self.design.look_every,
            "min_examples": self.design.min_examples,
            "max_examples": self.design.max_examples, "looks": self.look_index + 1,
            "method": "betting confidence sequence (Waudby-Smith & Ramdas 2024, aGRAPA bets), "
                      "Bonferroni over the family of comparisons",
            "family": self.family, "alpha_each": self.decision.alpha / max(1, self.family),
            "settled": not self.active(),
            "arms": arms,
            "comparisons": [{"kind": c.kind, "first": c.first, "second": c.second,
                             "state": c.result.state, "n": c.result.n,
                             "settled_at_look": settled.get((c.kind, c.first, c.second)),
                             "estimate": c.result.estimate, "low": c.result.low,
                             "high": c.result.high} for c in self.comparisons],
        }


def replay(run_dir: Path, arms: Sequence[ArmLike], decision: DecisionConfig,
           cols: Mapping[str, Sequence[Any]], endpoint: Mapping[Any, bool],
           observe: Callable[[Any, Any, bool], float]) -> Monitor | None:
    """The looks of a finished sequential run recomputed from its records, or None when the
    run was not sequential. `observe(expected, prediction, correct)` is an answer's score on
    the decision metric (sequential_order.observation)."""
    data = read_design(run_dir)
    if data is None:
        return None
    design = SequentialConfig(enabled=True, look_every=int(data["look_every"]),
                              min_examples=int(data["min_examples"]),
                              max_examples=data.get("max_examples"), seed=int(data["seed"]))
    clusters = {str(k): str(v) for k, v in data.get("clusters", {}).items()} or None
    monitor = Monitor(arms, [str(i) for i in data["order"]], design, decision, clusters)
    position = {i: n for n, i in enumerate(monitor.order)}
    rows = sorted(zip(cols["arm"], cols["example_id"], cols["expected"], cols["prediction"],
                      cols["correct"], cols["schema_valid"], cols["error_kind"], strict=True),
                  key=lambda r: position.get(str(r[1]), len(position)))
    every = design.look_every
    at = 0
    for look in range(monitor.looks):
        end = (look + 1) * every
        while at < len(rows) and position.get(str(rows[at][1]), len(position)) < end:
            arm, example_id, expected, prediction, correct, valid, kind = rows[at]
            score = None if endpoint.get(kind) else observe(expected, prediction, bool(correct))
            monitor.note(arm, str(example_id), score, bool(valid))
            at += 1
        monitor.look(look)
        if monitor.finished:
            break
    return monitor
