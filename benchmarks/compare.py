"""Each benchmark figure against the last committed record, flagging a ratio that worsened by
more than 10%.

    python benchmarks/compare.py                    # the newest record against the one before
    python benchmarks/compare.py --current FILE     # a record (or a folder's newest) against
                                                    # the last committed one before it

Records are the files `--json benchmarks/results/` writes (record.py): one per measured
commit, keyed by benchmark name. The baseline of each benchmark is the newest record of it in
an earlier file (by the records' dates) that measured the same work (the same inputs, such as
`examples` or `requests`), so a commit that measured only some benchmarks is compared
benchmark by benchmark. Whether a figure is better higher or lower is read from its
name (`per_s`, `fraction` higher; seconds, milliseconds, megabytes and `_over_` ratios lower);
inputs such as `requests` or `concurrency`, and references such as the bare client's time
or the time to import pandas, are shown but not judged. Exit status 1 when any
figure worsened by more than the tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
HIGHER = ("per_s", "fraction", "speedup", "share_of_ideal")
LOWER = ("_s", "_ms", "_mb", "_over_", "ratio", "rss", "seconds")
INPUTS = {"concurrency", "requests", "latency_s", "ideal_s", "ideal_per_s", "records", "arms",
          "answers", "examples", "rounds", "target", "n", "workers", "size"}


# what the harness is measured against, not the harness: not judged
REFERENCES = ("import_", "bare_", "ideal", "promptfoo_", "inspect_")


def direction(name: str) -> int:
    """+1 when a larger value is better, -1 when smaller is, 0 when the figure is an input or a
    reference the harness is measured against (a bare client, importing pandas)."""
    if name in INPUTS or name.endswith(("_n", "_count")) or name.startswith(REFERENCES):
        return 0
    if any(h in name for h in HIGHER):
        return 1
    if any(low in name for low in LOWER):
        return -1
    return 0


def load(path: Path) -> dict[str, dict[str, Any]]:
    """A results file: benchmark name -> record (a single-record file is keyed by its name)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if "benchmark" in data and "figures" in data:
        return {str(data["benchmark"]): data}
    return {str(k): v for k, v in data.items() if isinstance(v, dict) and "figures" in v}


def _date(record: dict[str, Any]) -> str:
    return str(record.get("date") or "")


def history(folder: Path) -> list[tuple[Path, dict[str, dict[str, Any]]]]:
    """Every results file of the folder, oldest first (by its newest record's date)."""
    files = [(p, load(p)) for p in sorted(folder.glob("*.json"))]
    return sorted(files, key=lambda f: max((_date(r) for r in f[1].values()), default=""))


def _inputs(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record["figures"].items() if k in INPUTS and k != "target"
            and isinstance(v, int | float | str)}


def _same_inputs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two records measured the same work: every input both state is equal (a 60k
    report is not compared with a 300k one, nor 3,334 examples with 20,000)."""
    x, y = _inputs(a), _inputs(b)
    return all(x[k] == y[k] for k in x.keys() & y.keys())


def compare(current: dict[str, dict[str, Any]], earlier: list[dict[str, dict[str, Any]]],
            tolerance: float) -> tuple[list[str], bool]:
    """Lines comparing each benchmark's figures with its newest earlier record, and whether
    any figure worsened by more than `tolerance` (a fraction)."""
    lines, worse = [], False
    for name, record in sorted(current.items()):
        before = [e[name] for e in reversed(earlier) if name in e
                  and _date(e[name]) < _date(record)]
        base = next((b for b in before if _same_inputs(b, record)), None)
        if base is None:
            inputs = ", ".join(f"{k} {v}" for k, v in sorted(_inputs(record).items()))
            lines.append(f"{name}: no earlier record to compare with"
                         + (f" at the same inputs ({inputs})" if before else ""))
            continue
        lines.append(f"{name}: {str(record.get('commit') or '?')[:12]} against "
                     f"{str(base.get('commit') or '?')[:12]} ({_date(base)})")
        for key, now in record["figures"].items():
            was = base["figures"].get(key)
            if not isinstance(now, int | float) or not isinstance(was, int | float) \
                    or isinstance(now, bool):
                continue
            sign = direction(key)
            ratio = now / was if was else float("inf") if now else 1.0
            flag = ""
            if sign and was:
                change = (ratio - 1) * sign  # positive: better
                if change < -tolerance:
                    flag, worse = f"  WORSE by {100 * -change:.0f}%", True
                elif change > tolerance:
                    flag = f"  better by {100 * change:.0f}%"
            judged = "" if sign else "  (not judged)"
            lines.append(f"  {key:<32} {was:>12.4g} -> {now:>12.4g}  x{ratio:.3f}{flag}{judged}")
    return lines, worse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--current", type=Path, help="a record file, or a folder whose newest "
                    "file is the current one (default: benchmarks/results/)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="the committed records")
    ap.add_argument("--tolerance", type=float, default=0.10, help="worsening that is flagged "
                    "(default 0.10: 10%%)")
    args = ap.parse_args(argv)
    files = history(args.results)
    if args.current is None or args.current.is_dir():
        pool = history(args.current) if args.current is not None else files
        if not pool:
            print(f"no records in {args.current or args.results}", file=sys.stderr)
            return 2
        current_path, current = pool[-1]
    else:
        current_path, current = args.current, load(args.current)
    earlier = [records for path, records in files if path.resolve() != current_path.resolve()]
    lines, worse = compare(current, earlier, args.tolerance)
    print("\n".join(lines))
    if worse:
        print(f"\nsome figures worsened by more than {100 * args.tolerance:g}%")
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main())
