"""Calibration: *does an answer's confidence mean what it says?* Calibration of per-answer
confidence (the `confidence` column: a vote's share, or the answer's token probability):
confidence bins against accuracy, and the expected calibration error (ECE).

ECE = sum over bins of (n_bin / n) * |accuracy_bin - mean confidence_bin|, with equal-width bins
over [0, 1] (the last bin closed), over the answers that have a confidence and an answer of
the model (endpoint failures left out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 5  # a vote of n samples has at most n distinct shares: a few wide bins
COLUMNS = ["strategy", "k", "bin_low", "bin_high", "n", "mean_confidence", "accuracy"]


def calibration_frame(results: pd.DataFrame, bins: int = BINS) -> pd.DataFrame:
    """One row per (arm, non-empty bin) of the arms whose answers carry a confidence."""
    if "confidence" not in results or not len(results):
        return pd.DataFrame(columns=COLUMNS)
    ok = results[results["confidence"].notna() & ~results["endpoint_failed"].astype(bool)]
    rows = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for (strategy, k), part in ok.groupby(["strategy", "k"], sort=False):
        conf = part["confidence"].to_numpy(dtype=float)
        right = part["correct"].astype(bool).to_numpy()
        which = np.minimum((conf * bins).astype(int), bins - 1)
        for b in range(bins):
            mask = which == b
            if mask.any():
                rows.append({"strategy": strategy, "k": int(k), "bin_low": float(edges[b]),
                             "bin_high": float(edges[b + 1]), "n": int(mask.sum()),
                             "mean_confidence": float(conf[mask].mean()),
                             "accuracy": float(right[mask].mean())})
    return pd.DataFrame(rows, columns=COLUMNS)


def expected_calibration_error(table: pd.DataFrame) -> dict[tuple[str, int], float]:
    """ECE per arm from calibration_frame's rows."""
    out = {}
    for (strategy, k), part in table.groupby(["strategy", "k"], sort=False):
        n = part["n"].sum()
        out[(str(strategy), int(k))] = float(
            (part["n"] / n * (part["accuracy"] - part["mean_confidence"]).abs()).sum())
    return out


__all__ = ["BINS", "COLUMNS", "calibration_frame", "expected_calibration_error"]
