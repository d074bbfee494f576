"""Power: *what difference can n examples detect?* Power of the paired comparisons: what an eval
of n examples can detect, and the n it needs.

Every comparison of two arms on the same examples is McNemar's test on the discordant pairs
(stats.mcnemar_exact). With discordance psi = p10 + p01 (the share of examples one arm gets
right and the other wrong) and a paired difference delta = p10 - p01:

* ``exact_power``: the power of the exact conditional test as the run performs it, averaged
  over the number of discordant pairs D ~ Binomial(n, psi); given D, n10 ~ Binomial(D, q) with
  q = (psi + delta) / (2 psi), rejected when 2 P(X <= min(n10, D - n10)) < alpha for X ~
  Binomial(D, 1/2). This is SAS PROC POWER's DIST=EXACT_COND method.
* ``normal_power`` and ``connor_n``: the normal approximation of Connor (1987, Biometrics 43:
  207-211), n = (z_{1-a/2} sqrt(psi) + z_{1-b} sqrt(psi - delta^2))^2 / delta^2.

The exact sums run over D within 9 standard deviations of n psi; above EXACT_MAX_N examples the
normal approximation is used (and named in every result).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from harness.analysis.results import Planning

if TYPE_CHECKING:
    import pandas as pd

EXACT_MAX_N = 20_000
DEFAULT_DISCORDANCE = 0.25  # without a pilot: a quarter of examples answered differently
DEFAULT_COMPLIANCE_DISCORDANCE = 0.10


def _check(n: float, psi: float, alpha: float) -> None:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 < psi <= 1:
        raise ValueError(f"the discordance must lie in (0, 1], got {psi}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _z(p: float) -> float:
    return NormalDist().inv_cdf(p)


def normal_power(n: float, delta: float, psi: float, alpha: float = 0.05) -> float:
    """Connor's normal-approximation power of the two-sided McNemar test (n may be an
    effective size, not a whole number)."""
    _check(n, psi, alpha)
    d = abs(delta)
    if d == 0:
        return alpha
    sd = math.sqrt(max(psi - d * d, 1e-12))
    z = _z(1 - alpha / 2) * math.sqrt(psi)
    cdf = NormalDist().cdf
    return cdf((d * math.sqrt(n) - z) / sd) + cdf((-d * math.sqrt(n) - z) / sd)


def connor_n(delta: float, psi: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Connor's (1987) sample size for the two-sided McNemar test (not rounded up)."""
    d = abs(delta)
    if not 0 < d <= psi <= 1:
        raise ValueError(f"need 0 < |delta| <= discordance <= 1, got {delta}, {psi}")
    top = _z(1 - alpha / 2) * math.sqrt(psi) + _z(power) * math.sqrt(psi - d * d)
    return (top / d) ** 2


_LOG_FACT = np.zeros(1)  # log(k!) for k = 0 .. len - 1, grown as needed


def _log_fact(n: int) -> np.ndarray:
    global _LOG_FACT
    if len(_LOG_FACT) <= n:
        size = max(n + 1, 2 * len(_LOG_FACT))
        _LOG_FACT = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size)))])
    return _LOG_FACT


def _log_pmf(d: int, q: float) -> np.ndarray:
    """log P(X = k), k = 0..d, for X ~ Binomial(d, q)."""
    lf = _log_fact(d)
    k = np.arange(d + 1)
    out = lf[d] - lf[k] - lf[d - k]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(out + np.where(k > 0, k * np.log(q), 0.0)
                          + np.where(d - k > 0, (d - k) * np.log1p(-q), 0.0))


@functools.lru_cache(maxsize=4096)
def _critical(d: int, alpha: float) -> int:
    """The largest k with 2 P(X <= k) < alpha for X ~ Binomial(d, 1/2), and 2k < d; -1 if none."""
    if d == 0:
        return -1
    cdf = np.cumsum(np.exp(_log_pmf(d, 0.5)))
    ok = np.flatnonzero((2 * cdf < alpha) & (2 * np.arange(d + 1) < d))
    return int(ok[-1]) if len(ok) else -1


SPAN_SD = 12.0  # beyond this many sd from the mode a binomial term is < 1e-31 of the peak


def _conditional_power(d: int, q: float, alpha: float) -> float:
    """P(reject | D = d): the two tails of Binomial(d, q) beyond the critical value, summed over
    the terms within SPAN_SD standard deviations of the mode (the others are too small to move
    a double: below 1e-31 of the largest term)."""
    return float(_conditional_powers(np.array([d]), q, alpha)[0])


def _conditional_powers(ds: np.ndarray, q: float, alpha: float, rows: int = 256) -> np.ndarray:
    """`_conditional_power` for every d of `ds` at once: one array expression per block of
    `rows` values of d (a row per d, a column per k within SPAN_SD sd of its mode)."""
    ds = np.asarray(ds, dtype=np.int64)
    out = np.zeros(len(ds))
    if not len(ds):
        return out
    lf = _log_fact(int(ds.max()))
    log_q = math.log(q) if q > 0 else -math.inf
    log_1q = math.log1p(-q) if q < 1 else -math.inf
    for start in range(0, len(ds), rows):
        d = ds[start: start + rows]
        c = np.array([_critical(int(x), alpha) for x in d])
        half = SPAN_SD * np.sqrt(d * q * (1 - q)) + 1
        lo = np.maximum(0, np.floor(d * q - half)).astype(np.int64)
        hi = np.minimum(d, np.ceil(d * q + half)).astype(np.int64)
        k = lo[:, None] + np.arange(int((hi - lo).max()) + 1)[None, :]
        valid = k <= hi[:, None]
        k = np.minimum(k, d[:, None])
        rest = d[:, None] - k
        with np.errstate(divide="ignore", invalid="ignore"):
            log = (lf[d][:, None] - lf[k] - lf[rest] + np.where(k > 0, k * log_q, 0.0)
                   + np.where(rest > 0, rest * log_1q, 0.0))
        pmf = np.where(valid, np.exp(log), 0.0)
        tails = np.where((k <= c[:, None]) | (k >= (d - c)[:, None]), pmf, 0.0).sum(axis=1)
        out[start: start + rows] = np.where(c >= 0, tails, 0.0)
    return out


def exact_power(n: int, delta: float, psi: float, alpha: float = 0.05) -> float:
    """The exact conditional McNemar test's power (see the module)."""
    _check(n, psi, alpha)
    d = abs(delta)
    if d > psi:
        raise ValueError(f"|delta| {d} cannot exceed the discordance {psi}")
    q = (psi + d) / (2 * psi)
    mean, sd = n * psi, math.sqrt(n * psi * (1 - psi))
    lo, hi = max(0, math.floor(mean - 9 * sd)), min(n, math.ceil(mean + 9 * sd))
    ds = np.arange(lo, hi + 1)
    weights = np.exp(_log_pmf(n, psi)[lo: hi + 1]) if psi < 1 else np.array([1.0])
    if psi == 1:
        ds = np.array([n])
    return float(weights @ _conditional_powers(ds, q, alpha))


def method(n: int) -> str:
    """How the power of n examples is computed: exact up to EXACT_MAX_N, else Connor's."""
    return "exact McNemar" if n <= EXACT_MAX_N else "normal approximation (Connor 1987)"


def power(n: int, delta: float, psi: float, alpha: float = 0.05) -> tuple[float, str]:
    """(power, method): exact up to EXACT_MAX_N examples, else the normal approximation."""
    exact = n <= EXACT_MAX_N
    return (exact_power if exact else normal_power)(n, delta, psi, alpha), method(n)


@dataclass(frozen=True)
class Detectable:
    """The smallest paired difference an eval detects with the target power, or None."""

    n: int
    discordance: float
    alpha: float
    power: float
    mde: float | None  # as a fraction (0.05 = 5 points); None: not even |delta| = discordance
    method: str
    design_effect: float = 1.0  # clustered examples: the power is that of n / design_effect


def _smallest(power_at: Callable[[float], float], psi: float, target: float) -> float | None:
    """The smallest |delta| <= psi whose power reaches `target` (bisection; power rises with
    |delta|); None when even |delta| = psi does not."""
    if power_at(psi) < target:
        return None
    lo, hi = 0.0, psi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if power_at(mid) < target else (lo, mid)
        if hi - lo < 1e-4:
            break
    return hi


def mde(n: int, psi: float, alpha: float = 0.05, target: float = 0.8) -> Detectable:
    """The minimum detectable paired difference at n examples and discordance psi: the
    smallest |delta| <= psi whose power reaches `target`."""
    _check(n, psi, alpha)
    found = _smallest(lambda d: power(n, d, psi, alpha)[0], psi, target)
    return Detectable(n, psi, alpha, target, found, method(n))


def required_n(delta: float, psi: float, alpha: float = 0.05, target: float = 0.8) -> tuple[int, str]:
    """The fewest examples whose power to detect `delta` reaches `target`, and the method.

    Exact power is not monotone in n (the binomial test's attained level jumps), so this is
    the smallest n (on a grid of steps of 1%, exact below 200) from which the target is reached
    at that size and the next three as well.
    """
    guess = connor_n(delta, psi, alpha, target)
    if guess > EXACT_MAX_N:
        return math.ceil(guess), "normal approximation (Connor 1987)"
    n = max(2, math.floor(0.7 * guess))
    while n <= EXACT_MAX_N:
        if all(exact_power(m, delta, psi, alpha) >= target for m in range(n, n + 4)):
            return n, "exact McNemar"
        n += 1 if n < 200 else max(1, n // 100)
    return math.ceil(guess), "normal approximation (Connor 1987)"


def detectable_pair(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, target: float = 0.8,
                    design_effect: float = 1.0) -> Detectable | None:
    """`mde` of one comparison from two arms' score matrices (n_examples, n_draws; NaN where
    an example has no result): its n (examples both have), its discordance (on the
    majority-correct answers, as McNemar's test uses them); None when they share no example
    or never disagree. Clustered examples (`design_effect` > 1, of the paired difference):
    the power of the effective size n / design_effect (clustered_mde)."""
    keep = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
    if not keep.any():
        return None
    psi = discordance(a[keep].mean(axis=1) > 0.5, b[keep].mean(axis=1) > 0.5)
    if psi <= 0:
        return None
    return clustered_mde(int(keep.sum()), psi, design_effect, alpha, target)


def clustered_method(n: int, deff: float) -> str:
    """How the power of n clustered examples with design effect deff is computed."""
    return (f"normal approximation (Connor 1987) at the effective size {n / deff:.0f} "
            f"(clusters, design effect {deff:.2f})")


def clustered_mde(n: int, psi: float, design_effect: float, alpha: float = 0.05,
                  target: float = 0.8) -> Detectable:
    """`mde` of n clustered examples. The clustered McNemar test (Durkalski et al. 2003) is a
    chi-square test whose variance is that of independent examples times the design effect,
    so its power is Connor's normal approximation at the effective size n / design_effect
    (max(1, ...)); reported with the real n and the design effect used. A design effect of 1
    (or below) is the unclustered `mde`."""
    deff = max(1.0, design_effect)
    if deff == 1.0:
        return mde(n, psi, alpha, target)
    _check(n / deff, psi, alpha)
    found = _smallest(lambda d: normal_power(n / deff, d, psi, alpha), psi, target)
    return Detectable(n, psi, alpha, target, found, clustered_method(n, deff), deff)


def discordance(a: np.ndarray, b: np.ndarray) -> float:
    """The share of examples one of two boolean vectors has right and the other wrong."""
    x, z = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return float(np.mean(x != z)) if len(x) else math.nan


def planning(comparisons: pd.DataFrame, decisive: tuple[str, str] | None) -> Planning | None:
    """What this run can detect: from the decisive comparison (`decisive` = (arm_a, arm_b),
    e.g. the fine-tuned arm against the best prompt) when the table has it, else the row with
    the most examples; its n, discordance and minimum detectable difference (80% power,
    alpha 0.05), and the sentence the report shows. None without an accuracy comparison."""
    rows = comparisons[comparisons["mde"].notna() | comparisons["discordance"].notna()] \
        if "mde" in comparisons else comparisons.iloc[:0]
    if not len(rows):
        return None
    pick = rows.iloc[:0]
    if decisive is not None:
        a, b = decisive
        pick = rows[((rows["arm_a"] == a) & (rows["arm_b"] == b))
                    | ((rows["arm_a"] == b) & (rows["arm_b"] == a))]
    r = (pick if len(pick) else rows.sort_values("n", ascending=False, kind="stable")).iloc[0]
    # the row's own mde (detectable_pair: 80% power, alpha 0.05), not computed again
    n, psi = int(r["n"]), float(r["discordance"])
    floor = None if math.isnan(r["mde"]) else float(r["mde"])
    deff = float(r["design_effect"]) if "design_effect" in r and r["design_effect"] > 1 else 1.0
    how = method(n) if deff == 1.0 else clustered_method(n, deff)
    where = f"discordance {psi:.2f} between {r['arm_a']} and {r['arm_b']}"
    if floor is None:
        sentence = (f"With n = {n}, this eval cannot detect even the largest possible paired "
                    f"difference with 80% power (alpha = 0.05; {how}, {where}).")
    else:
        sentence = (f"With n = {n}, this eval can detect paired differences of at least "
                    f"{100 * floor:.1f} points (80% power, alpha = 0.05; {how}, {where}).")
    return Planning(n, psi, floor, 0.8, 0.05, how, (str(r["arm_a"]), str(r["arm_b"])), sentence,
                    deff if deff > 1 else None)


def caution(plan: Planning | None, delta: float | None) -> str | None:
    """A caution when the decisive difference is smaller than what the eval can detect, or,
    with no decisive difference (no fine-tuned arm), when the eval cannot detect any
    difference at all (planning's mde is None)."""
    if plan is not None and plan.mde is None and (delta is None or math.isnan(delta)):
        return (f"Caution: with n = {plan.n} this eval cannot detect even the largest possible "
                "paired difference with 80% power; the verdict rests on no detectable "
                "difference, not on evidence of none: more examples would make it firmer.")
    if plan is None or delta is None or math.isnan(delta):
        return None
    floor = plan.mde
    if floor is not None and abs(delta) >= floor:
        return None
    limit = "any difference" if floor is None else f"the {100 * floor:.1f} points"
    return (f"Caution: the decisive difference, {100 * delta:+.1f} points, is smaller than "
            f"{limit} this eval can detect with 80% power; more examples would make the "
            "verdict firmer.")


__all__ = [
    "DEFAULT_COMPLIANCE_DISCORDANCE",
    "DEFAULT_DISCORDANCE",
    "EXACT_MAX_N",
    "Detectable",
    "caution",
    "clustered_mde",
    "clustered_method",
    "connor_n",
    "detectable_pair",
    "discordance",
    "exact_power",
    "mde",
    "method",
    "normal_power",
    "planning",
    "power",
    "required_n",
]
