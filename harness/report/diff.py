"""`harness diff RUN_A RUN_B`: diff.csv (one row per example whose correctness changed) and
diff.html (self-contained, like report.html: no script, no remote load), from
analysis.diff.RunDiff; and the same view as a section of report.html (`harness report RUN
--against OTHER`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from harness.analysis.diff import ArmDiff, RunDiff, expected_text
from harness.files import write_text_atomic

DIFF_CSV, DIFF_HTML = "diff.csv", "diff.html"
COLUMNS = ["arm", "example_id", "change", "expected", "output_a", "output_b", "input"]
SHOWN = 60  # changed examples shown per arm and change in diff.html (diff.csv has them all)


def diff_csv(d: RunDiff) -> str:
    """diff.csv: arm, example_id, change (fixed | broken), expected, output_a, output_b, input."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for arm in d.arms:
        for c in arm.changed:
            w.writerow([arm.arm, c.example_id, c.change, expected_text(c.expected), c.output_a,
                        c.output_b, c.input])
    return buf.getvalue()


def _points(x: float) -> str:
    return f"{100 * x:+.1f}".replace("-", "\u2212")


def _arm_row(a: ArmDiff) -> dict[str, Any]:
    d = a.difference
    return {"arm": f"{a.arm} (A: {a.arm_a})" if a.arm_a else a.arm, "n": a.n,
            "accuracy_a": f"{a.accuracy_a:.3f}",
            "accuracy_b": f"{a.accuracy_b:.3f}", "fixed": a.fixed, "broken": a.broken,
            "change": f"{_points(d.estimate)} points [{_points(d.low)}, {_points(d.high)}]",
            "p": f"{a.p_value:.3g}", "test": "McNemar" if a.test == "mcnemar" else a.test,
            "models": a.model_b if a.model_a == a.model_b else f"{a.model_a} \u2192 {a.model_b}"}


def diff_context(d: RunDiff) -> dict[str, Any]:
    """What the diff's templates show: per arm its figures, changed examples and prompt diff."""
    arms = []
    for a in d.arms:
        changed = [{"id": c.example_id, "change": c.change, "input": c.input,
                    "expected": expected_text(c.expected), "output_a": c.output_a,
                    "output_b": c.output_b} for c in a.changed]
        shown = ([c for c in changed if c["change"] == "fixed"][:SHOWN]
                 + [c for c in changed if c["change"] == "broken"][:SHOWN])
        arms.append({**_arm_row(a), "examples": shown, "more": len(changed) - len(shown),
                     "prompt_diff": [{"line": line, "kind": _line_kind(line)}
                                     for line in a.prompt_diff]})
    return {"run_a": d.run_a, "run_b": d.run_b, "name_a": d.name_a, "name_b": d.name_b,
            "arms": arms, "only_a": list(d.only_a), "only_b": list(d.only_b),
            "shared": _shared(d), "config": list(d.config)}


def _shared(d: RunDiff) -> str:
    """How many examples the runs share, and how many only one of them holds."""
    return f"{d.shared} examples in both runs" + (
        f"; not shared: {d.not_shared_a} only in A, {d.not_shared_b} only in B"
        if d.not_shared_a or d.not_shared_b else "")


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---", "@@")):
        return "meta"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


def render_diff_html(d: RunDiff) -> str:
    """diff.html as one string (templates/diff.html.j2)."""
    from harness.report.html import CSP, environment

    return environment().get_template("diff.html.j2").render(csp=CSP, diff=diff_context(d))


def write_diff(d: RunDiff, out: Path) -> tuple[Path, Path]:
    """Write diff.csv and diff.html into `out` (made if missing); return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / DIFF_CSV, diff_csv(d))
    write_text_atomic(out / DIFF_HTML, render_diff_html(d))
    return out / DIFF_CSV, out / DIFF_HTML


def summary_lines(d: RunDiff) -> list[str]:
    """The terminal's summary: per arm fixed, broken and the paired test; what changed."""
    lines = [f"A: {d.run_a} ({d.name_a})", f"B: {d.run_b} ({d.name_b})",
             _shared(d)]
    for a in d.arms:
        r = _arm_row(a)
        lines.append(f"  {r['arm']:<24} n={a.n:<5} fixed {a.fixed:<4} broken {a.broken:<4} "
                     f"accuracy {r['accuracy_a']} -> {r['accuracy_b']}, {r['change']}, "
                     f"p={r['p']} ({r['test']})".replace("\u2212", "-"))
        if a.model_a != a.model_b:
            lines.append(f"    model {a.model_a} -> {a.model_b}")
        if a.prompt_diff:
            lines.append(f"    prompt changed ({sum(1 for x in a.prompt_diff[2:] if x[:1] in '+-')}"
                         " lines)")
    lines += [f"  only in A: {n}" for n in d.only_a] + [f"  only in B: {n}" for n in d.only_b]
    lines += [f"  config {c}" for c in d.config]
    return lines
