"""What do the committed run folders say? The `arms` block (a run's arms table, its verdict and
provenance) and the `side-by-side` block (two runs of one eval compared: verdict, examples,
requests, wall time), read from a run folder's summary.csv, summary.json and run.json."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from docgen.markdown import DASH, DocsError, format_date, table


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Run:
    """The committed files of one run folder that the docs quote."""

    folder: str
    rows: list[dict[str, str]]
    summary: dict[str, Any]
    meta: dict[str, Any]


def read_run(root: Path, folder: str) -> Run:
    """summary.csv, summary.json and run.json of `root/folder` (DocsError when one is missing)."""
    where = root / folder
    need = [where / n for n in ("summary.csv", "summary.json", "run.json")]
    missing = [p.name for p in need if not p.is_file()]
    if not where.is_dir() or missing:
        raise DocsError(f"no run folder {folder}" if not where.is_dir()
                        else f"{folder}: missing {', '.join(missing)}")
    with need[0].open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return Run(folder, rows, _read_json(need[1]), _read_json(need[2]))


def _float(row: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key) or "nan")
    except ValueError:
        return None
    return None if value != value else value


def _with_ci(row: Mapping[str, str], key: str, low: str, high: str) -> str:
    value = _float(row, key)
    if value is None:
        return DASH
    lo, hi = _float(row, low), _float(row, high)
    return f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def arm_label(row: Mapping[str, str]) -> str:
    """The arm's display name, as every table of the harness writes it (`few-shot@k=4`)."""
    from harness.strategies import arm_name

    return arm_name(row["strategy"], int(float(row.get("k") or 0)), row.get("type", ""))


def _sequential(run: Run) -> dict[str, tuple[int, int]]:
    """Sequential runs: arm -> (requested, available), summed over draws."""
    seq = run.summary.get("sequential") or {}
    out: dict[str, tuple[int, int]] = {}
    for arm in (seq.get("arms") or {}).values():
        req, avail = out.get(str(arm.get("unit")), (0, 0))
        out[str(arm.get("unit"))] = (req + int(arm.get("requested") or 0),
                                     avail + int(arm.get("available") or 0))
    return out


def _verdict(run: Run) -> str:
    rec = run.summary.get("recommendation")
    if not rec:
        reasons = run.summary.get("recommendation_withheld") or []
        why = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else str(reasons)
        return "No verdict (withheld)" + (f": {why}" if why else ".")
    return f"Verdict `{rec.get('verdict')}`: {rec.get('sentence', '')}"


def provenance(run: Run) -> str:
    """`Run folder X: made by harness V (commit C), finished D, format version N`."""
    meta = run.meta
    commit = str((meta.get("versions") or {}).get("harness_commit") or "")
    made = (f"commit {commit[:7]}" + (", with uncommitted changes" if commit.endswith("-dirty")
                                      else "")) if commit else "commit not recorded"
    return (f"Run folder `{run.folder}`: made by harness {meta.get('harness_version', '?')} "
            f"({made}), finished {format_date(str(meta.get('finished_at') or ''))}, format version "
            f"{meta.get('format_version', 1)}.")


def arms_block(root: Path, folder: str) -> str:
    """The arms table of a run, its verdict sentence and its provenance."""
    run = read_run(root, folder)
    extraction = run.meta.get("task_type") == "extraction" or any(
        r.get("field_f1") not in (None, "") for r in run.rows)
    sequential = bool((run.summary.get("sequential") or {}).get("enabled"))
    header = ["arm", "n", "accuracy [95% CI]", "field F1" if extraction else "macro-F1",
              "schema compliance"] + (["requested"] if sequential else [])
    available = _sequential(run)
    rows = []
    for r in run.rows:
        answered = int(float(r.get("answers") or 0)) > 0
        draws = int(float(r.get("draws") or 1))
        name = arm_label(r)
        row = [name, r["n"] + (f" ({draws} draws)" if draws > 1 else ""),
               _with_ci(r, "accuracy", "ci_low", "ci_high") if answered else "n/a",
               (_with_ci(r, "field_f1", "field_f1_ci_low", "field_f1_ci_high") if extraction
                else _with_ci(r, "macro_f1", "", "")) if answered else "n/a",
               _with_ci(r, "schema_compliance", "schema_ci_low", "schema_ci_high")
               if answered else "n/a"]
        if sequential:
            req = r.get("requested") or DASH
            row.append(f"{req} of {available[name][1]}" if name in available else req)
        rows.append(row)
    return f"{table(header, rows)}\n\n{_verdict(run)}\n\n{provenance(run)}"


def _seconds(meta: Mapping[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(meta["started_at"]))
        end = datetime.fromisoformat(str(meta["finished_at"]))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    whole = round(seconds)
    return f"{whole:,} s" + (f" ({whole // 60} min {whole % 60} s)" if whole >= 60 else "")


def _requests(meta: Mapping[str, Any]) -> int:
    counts = meta.get("counts") or {}
    return int(counts.get("requests") or 0) + int(counts.get("cache_hits") or 0)


def _share(part: float | None, whole: float | None) -> str:
    return f"{100 * part / whole:.1f}%" if part is not None and whole else DASH


def side_by_side_block(root: Path, first: str, second: str) -> str:
    """Two runs of one eval compared: verdict, decisive figure, examples, requests, time."""
    a, b = read_run(root, first), read_run(root, second)

    def examples(run: Run) -> str:
        seq = _sequential(run)
        parts = []
        for r in run.rows:
            name = arm_label(r)
            extra = f" (requested {seq[name][0]} of {seq[name][1]})" if name in seq else ""
            parts.append(f"{name} {r['n']}{extra}")
        return "; ".join(parts)

    def requests(run: Run) -> str:
        hits = int((run.meta.get("counts") or {}).get("cache_hits") or 0)
        return f"{_requests(run.meta):,}" + (f" ({hits:,} from the cache)" if hits else "")

    def verdict(run: Run) -> str:
        rec = run.summary.get("recommendation")
        return f"`{rec.get('verdict')}`" if rec else "withheld"

    def sentence(run: Run) -> str:
        rec = run.summary.get("recommendation")
        return str(rec.get("sentence", "")) if rec else DASH

    share = (f"{_share(_requests(b.meta), _requests(a.meta))} of the requests, "
             f"{_share(_seconds(b.meta), _seconds(a.meta))} of the wall time")
    rows = [("verdict", verdict(a), verdict(b)),
            ("decisive figure", sentence(a), sentence(b)),
            ("examples scored per arm", examples(a), examples(b)),
            ("requests made (cache hits included)", requests(a), requests(b)),
            ("wall time", _duration(_seconds(a.meta)), _duration(_seconds(b.meta))),
            (f"share of `{first}`", DASH, share)]
    return (table(("", f"`{first}`", f"`{second}`"), rows)
            + f"\n\n{provenance(a)}\n\n{provenance(b)}")
