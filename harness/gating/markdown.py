"""The gate's result as GitHub-flavoured Markdown, for a pull-request comment."""

from __future__ import annotations

from harness.gating.compare import GateResult


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(result: GateResult) -> str:
    """The gate's table in GitHub-flavoured Markdown (ASCII only), for a pull-request comment."""
    verdict = "PASSED" if result.passed else "FAILED"
    n_fail = sum(not r.passed for r in result.rows) + len(result.problems)
    lines = [f"### harness gate: {verdict}" + (f" ({n_fail} failing)" if n_fail else ""), "",
             f"Run `{result.run_name}` against baseline `{result.baseline_source or 'none'}`: fails when a "
             f"metric falls by more than {100 * result.max_drop:g} points and the fall is significant "
             f"(Holm-adjusted p < {result.alpha:g}), or is below a floor.", ""]
    lines += [f"- **FAIL**: {p}" for p in result.problems]
    lines += [f"- note: {n}" for n in result.notes]
    if result.problems or result.notes:
        lines.append("")
    lines += ["| arm | metric | baseline | now | change (95% CI) | p (Holm) | status |",
              "|---|---|---:|---:|---|---:|---|"]
    for r in result.rows:
        change = "n/a" if r.change is None else (
            f"{100 * r.change.estimate:+.1f} pts [{100 * r.change.low:+.1f}, {100 * r.change.high:+.1f}]")
        p = "n/a" if r.p_adjusted is None else f"{r.p_adjusted:.3g} ({r.test})"
        status = f"**FAIL** {r.status}" if r.failures else r.status
        lines.append("| " + " | ".join(_cell(c) for c in (
            r.arm, r.metric.replace("_", " "), _pct(r.baseline), _pct(r.now), change, p, status)) + " |")
    if result.baseline_written:
        lines += ["", f"Baseline updated: `{result.baseline_written}`."]
    return "\n".join(lines) + "\n"
