"""The gate's result as GitHub-flavoured Markdown, for a pull-request comment."""

from __future__ import annotations

from harness.gating.compare import GateResult, GateRow


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _k_line(r: GateRow, alpha: float) -> str:
    """'few-shot: k=8 -> k=2, -16.7 points, significant (Holm p=0.004)' for an arm whose k
    changed since the baseline."""
    strategy = r.arm.split("@", 1)[0]
    if r.change is None or r.p_adjusted is None:
        return f"{strategy}: {r.k_change} (nothing to compare)"
    significant = "significant" if r.p_adjusted < alpha else "not significant"
    return (f"{strategy}: {r.k_change}, {100 * r.change.estimate:+.1f} points, {significant} "
            f"(Holm p={r.p_adjusted:.3g}, {r.test})")


def markdown(result: GateResult) -> str:
    """The gate's table in GitHub-flavoured Markdown (ASCII only), for a pull-request comment."""
    verdict = "PASSED" if result.passed else "FAILED"
    n_fail = sum(not r.passed for r in result.rows) + len(result.problems)
    rule = (f"fails when a metric falls by more than {100 * result.max_drop:g} points and the "
            f"fall is significant (Holm-adjusted p < {result.alpha:g}), or is below a floor.")
    against = (f"Run `{result.run_name}` against baseline `{result.baseline_source}`: {rule}"
               if result.baseline_source else
               f"Run `{result.run_name}`: new baseline (there is none to compare with yet); "
               f"from now on the gate {rule}")
    lines = [f"### harness gate: {verdict}" + (f" ({n_fail} failing)" if n_fail else ""), "",
             against, ""]
    lines += [f"- **FAIL**: {p}" for p in result.problems]
    lines += [f"- note: {n}" for n in result.notes]
    lines += [f"- {_k_line(r, result.alpha)}" for r in result.rows
              if r.k_change and r.metric == "accuracy"]
    if result.problems or result.notes or any(r.k_change for r in result.rows):
        lines.append("")
    if result.baseline_source and result.changes:
        lines += ["What changed since the baseline:", ""]
        lines += [f"- {_cell(c)}" for c in result.changes] + [""]
    elif result.baseline_source and not result.baseline_recorded:
        lines += ["The baseline does not record its prompts, models or config (an older baseline "
                  "file or a summary.json): rewrite it with --update-baseline to see what "
                  "changed.", ""]
    lines += ["| arm | metric | baseline | now | change (95% CI) | p (Holm) | status |",
              "|---|---|---:|---:|---|---:|---|"]
    for r in result.rows:
        change = "n/a" if r.change is None else (
            f"{100 * r.change.estimate:+.1f} pts [{100 * r.change.low:+.1f}, {100 * r.change.high:+.1f}]")
        p = "n/a" if r.p_adjusted is None else f"{r.p_adjusted:.3g} ({r.test})"
        status = f"**FAIL** {r.status}" if r.failures else r.status
        arm = f"{r.arm} (baseline {r.baseline_arm})" if r.baseline_arm else r.arm
        lines.append("| " + " | ".join(_cell(c) for c in (
            arm, r.metric.replace("_", " "), _pct(r.baseline), _pct(r.now), change, p, status)) + " |")
    if result.baseline_written:
        lines += ["", f"Baseline updated: `{result.baseline_written}`."]
    return "\n".join(lines) + "\n"
