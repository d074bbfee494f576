"""The command line: thin wrappers that call the pipeline and print. Only this module prints."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.cli_inspect import cmd_cache, cmd_diff, cmd_history
from harness.cli_progress import ProgressBar, loss_progress
from harness.cli_progress import log as _log
from harness.errors import HarnessError, InputError
from harness.version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{self.prog}: {message}")


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.api import load_config
    from harness.config import with_overrides
    from harness.running import plan
    from harness.running.preflight import check_keys, preflight

    cfg = load_config(args.config)
    if getattr(args, "dry_run", False):
        cfg = with_overrides(cfg, limit=args.limit, concurrency=args.concurrency)
    p = plan(cfg)
    check_keys(p)
    d = p.data
    print(f"ok: {cfg.path}")
    fields = p.task.output_schema().get("properties", {}) if not d.labels else {}
    shown = ", ".join(d.labels[:12]) + (f" and {len(d.labels) - 12} more" if len(d.labels) > 12
                                        else "")
    kinds = f"{len(d.labels)} labels: {shown}" if d.labels else f"fields: {', '.join(fields)}"
    print(f"  eval: {len(d.eval)} examples (of {d.eval_total}), {kinds}")
    print(f"  train pool: {len(d.train)} examples ({d.leaked} removed: also in the eval set)")
    for s in p.strategies:
        arm = s.arm
        note = f"  [unavailable: {arm.unavailable}]" if arm.unavailable else ""
        print(f"  arm {arm.key:<28} model {arm.model_id}  prompt {arm.prompt_sha256}{note}")
    dry = getattr(args, "dry_run", False)
    print(f"requests (no model is called {'in a dry run' if dry else 'to validate'}):")
    for line in preflight(p).describe():
        print(line)
    return 0


def _fraction(name: str, value: float) -> float:
    if not 0 < value < 1:
        raise InputError(f"{name} must lie between 0 and 1 (a fraction: 0.03 = 3 points), "
                         f"got {value:g}")
    return value


def cmd_plan(args: argparse.Namespace) -> int:
    from harness.analysis.planning import plan_config, plan_lines
    from harness.api import load_config

    delta, target = _fraction("--delta", args.delta), _fraction("--power", args.power)
    alpha = _fraction("--alpha", args.alpha)
    cfg = load_config(args.config)  # the comparisons and the plateau rule's few-shot steps
    result = plan_config(cfg, pilot=args.pilot, delta=delta, target=target, alpha=alpha)
    print("\n".join(plan_lines(result, cfg.name)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.api import load_config, run
    from harness.config import with_overrides

    if args.max_cost is not None and not args.max_cost > 0:
        raise InputError("--max-cost: must be more than 0 (USD)")
    cfg = with_overrides(load_config(args.config), limit=args.limit, concurrency=args.concurrency,
                         max_cost_usd=args.max_cost)
    if args.dry_run:
        return cmd_validate(args)
    result = run(cfg, args.out, use_cache=not args.no_cache, progress=ProgressBar(cfg.name),
                 train_progress=loss_progress, log=_log, resume=args.resume,
                 keep_failures=args.keep_failures, allow_missing=args.allow_missing,
                 history=args.history)
    from harness.analysis.design_space import untried_text  # (pandas: after the requests)
    from harness.report import format_figures, format_table

    a, counts, out = result.analysis, result.counts, result.out
    print(format_table(a))
    print(f"\nverdict: {a.verdict.recommendation}: {a.verdict.sentence}")
    if a.verdict.figures:
        print(format_figures(a))
    if a.untried and not a.withheld:
        print(untried_text(a.untried))
    if a.planning:
        print(a.planning.sentence)
    if a.sequential_note:
        print(a.sequential_note)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(counts.retries_by_kind.items()))
    again = (f", re-requested {counts.rerequested} that the endpoint failed on before"
             if counts.rerequested else "")
    print(f"requests {counts.requests}, cache hits {counts.cache_hits}, retries {counts.retries}"
          f"{f' ({kinds})' if kinds else ''}, endpoint failures {counts.endpoint_failures}, "
          f"model failures {counts.failures - counts.endpoint_failures - counts.not_requested}, "
          f"already done {counts.skipped_done}{again}"
          + (f", not requested {counts.not_requested} (model unavailable)"
             if counts.not_requested else "")
          + (f", spent ${counts.spent_usd:,.4f}" if counts.spent_usd else ""))
    print(f"reports: {out}/ (report.html, summary.csv, summary.json, results.csv, comparisons.csv, "
          "tried.csv)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import format_table, write_reports  # (not harness.api: no run code)

    run_dir = Path(args.run_dir)
    against = Path(args.against) if args.against else None
    a = write_reports(run_dir, rescore=args.rescore, against=against)
    print(format_table(a))
    print(f"reports {'re-scored and ' if args.rescore else ''}rebuilt in {run_dir}/"
          + (f" (with what changed against {against}: diff.csv, diff.html)" if against else ""))
    return 0


def _asker(command: str, what: str, question: str) -> Callable[[str], bool]:
    """The consent prompt of a paid command: on a terminal ask; otherwise refuse (--yes)."""

    def ask(_estimate: str) -> bool:  # the estimate is already on stderr, through _log
        if not sys.stdin.isatty():
            raise InputError(f"{command}: this starts {what} and stdin is not a terminal to "
                             "ask on; pass --yes to confirm non-interactively")
        print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in {"y", "yes"}

    return ask


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness.api import cancel_finetune, finetune

    if args.cancel:
        job = cancel_finetune(args.config, args.strategy, log=_log)
        print(f"cancelled fine-tuning job {job}" if job else
              "no running fine-tuning job for this config's data and settings")
        return 0
    ask = _asker("finetune", "a paid fine-tuning job", "Start this fine-tuning job?")
    entry = finetune(args.config, args.strategy, out=Path(args.out) if args.out else None,
                     progress=loss_progress, log=_log, force=args.force,
                     confirm=None if args.yes else ask)
    print(f"{entry.name}: {entry.model_id} ({entry.provider}, base {entry.base_model}, "
          f"{entry.trained_tokens or 0} trained tokens)")
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from harness.api import distill

    if args.min_confidence is not None:
        _fraction("--min-confidence", args.min_confidence)
    from harness.training.distill import distill_lines

    ask = _asker("distill", "paid work (the teacher's requests and a fine-tuning job)",
                 "Start this distillation?")
    s = distill(args.config, args.teacher, args.student, out=args.out, unlabeled=args.unlabeled,
                min_confidence=args.min_confidence, progress=loss_progress, log=_log,
                confirm=None if args.yes else ask)
    print("\n".join(distill_lines(s)))
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harness.api import gate
    from harness.gating import markdown

    result = gate(args.run_dir, args.baseline, max_drop=args.max_drop, alpha=args.alpha,
                  update=args.update_baseline, allow_different=args.allow_different,
                  match=args.match, hash_ids=args.hash_ids)
    print(markdown(result), end="")
    print(f"gate {'passed' if result.passed else 'FAILED'}: {args.run_dir}/gate.md, "
          f"{args.run_dir}/junit.xml", file=sys.stderr)
    return result.exit_code


_PATHS = ("config", "out", "history", "pilot", "run_dir", "baseline", "unlabeled")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="harness", description="Prompt or fine-tune? Measure it.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run every strategy of a config and write reports")
    run.add_argument("config", help="YAML config file")
    run.add_argument("--out", help="run folder (default: reports/NAME-TIMESTAMP); an existing "
                     "run folder of the same config is resumed")
    run.add_argument("--resume", action="store_true", help="resume the run in --out; an error when "
                     "--out holds no run (without it, a run of the same config in --out is resumed too)")
    run.add_argument("--limit", type=int, help="seeded stratified sample of N eval examples")
    run.add_argument("--concurrency", type=int, help="parallel requests (overrides run.concurrency)")
    run.add_argument("--no-cache", action="store_true", help="bypass the response cache")
    run.add_argument("--keep-failures", action="store_true", help="on resume, keep the examples "
                     "the endpoint failed on as failed instead of requesting them again")
    run.add_argument("--allow-missing", action="store_true", help="accept a run in which an "
                     "arm's model does not exist (it is reported unavailable; no verdict)")
    run.add_argument("--dry-run", action="store_true", help="check everything and print the "
                     "requests and estimated cost; send nothing, write nothing")
    run.add_argument("--history", help="history file to append to (default: $HARNESS_HISTORY, "
                     "else reports/history.jsonl)")
    run.add_argument("--max-cost", type=float, metavar="USD", help="a hard spend cap for this "
                     "invocation (overrides run.max_cost_usd): the run stops, exit 1, before a "
                     "request that could take the known spend past it")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="check config and data; calls no model")
    val.add_argument("config")
    val.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="what the eval can detect, and the size it needs (no model call)")
    pl.add_argument("config")
    pl.add_argument("--pilot", metavar="RUN_DIR", help="a run folder whose arms' disagreement to plan with")
    pl.add_argument("--delta", type=float, default=0.03, help="paired difference to detect (0.03 = 3 points)")
    pl.add_argument("--power", type=float, default=0.8)
    pl.add_argument("--alpha", type=float, default=0.05, help="familywise; Holm over the comparisons")
    pl.set_defaults(func=cmd_plan)
    rep = sub.add_parser("report", help="rebuild every report file of a run folder (no model call)")
    rep.add_argument("run_dir")
    rep.add_argument("--rescore", action="store_true", help="score every stored model output "
                     "again through the task first (e.g. after a scoring fix); no model call")
    rep.add_argument("--against", metavar="OTHER_RUN", help="an earlier run folder: add what "
                     "changed against it (fixed and broken examples, prompt diff, config keys) "
                     "to the report, and write diff.csv and diff.html")
    rep.set_defaults(func=cmd_report)

    dif = sub.add_parser("diff", help="what changed between two runs, example by example: fixed "
                         "and broken per arm, the paired test, prompt and config diff (no model "
                         "call; writes diff.csv, diff.html)")
    dif.add_argument("run_a", help="the earlier run folder (A)")
    dif.add_argument("run_b", help="the later run folder (B)")
    dif.add_argument("--arm", help="only this arm (e.g. few-shot@k=4)")
    dif.add_argument("--out", help="folder for diff.csv and diff.html (default: RUN_B)")
    dif.set_defaults(func=cmd_diff)

    gate = sub.add_parser("gate", help="compare a run with a baseline; exit 1 on a significant "
                          "regression or a metric below its floor (writes gate.md, junit.xml)")
    gate.add_argument("run_dir")
    gate.add_argument("--baseline", required=True, help="baseline file (see --update-baseline), "
                      "a run's summary.json, or a run folder")
    gate.add_argument("--max-drop", type=float, help="largest tolerated fall of a metric, as a "
                      "fraction (default: gate.max_drop of the config, else 0.02)")
    gate.add_argument("--alpha", type=float, help="significance level, Holm-adjusted over the "
                      "gate's tests (default: gate.alpha of the config, else 0.05)")
    gate.add_argument("--update-baseline", action="store_true", help="accept this run: write it "
                      "as the new baseline file (floors and completeness still count; an "
                      "incomplete run is refused)")
    gate.add_argument("--allow-different", action="store_true", help="compare even with a "
                      "baseline of another config name, task type or label set (refused "
                      "otherwise, exit 2)")
    gate.add_argument("--match", choices=["nearest", "exact"], default="nearest",
                      help="how arms are paired with the baseline's: nearest (default: an arm "
                      "whose k changed is compared with its strategy's baseline arm at the "
                      "nearest k) or exact (by name; a changed k is a new arm and a missing one)")
    gate.add_argument("--hash-ids", action="store_true", help="with --update-baseline: keep "
                      "each example id's SHA-256 (16 hex digits) in the baseline file instead "
                      "of the id, for ids that must not be committed")
    gate.set_defaults(func=cmd_gate)

    ft = sub.add_parser("finetune", help="build training data and fine-tune a model for a "
                        "fine_tuned strategy")
    ft.add_argument("config")
    ft.add_argument("--strategy", help="the fine_tuned strategy (default: the first one)")
    ft.add_argument("--out", help="folder for the training files (default: reports/NAME-finetune)")
    ft.add_argument("--force", action="store_true", help="train again even if the registry has it")
    ft.add_argument("--yes", action="store_true", help="start a paid fine-tuning job without "
                    "asking (for CI; without it the estimate is shown and a terminal is asked)")
    ft.add_argument("--cancel", action="store_true", help="cancel this config's running job "
                    "at the provider (the jobs API) instead of training")
    ft.set_defaults(func=cmd_finetune)
    dis = sub.add_parser("distill", help="label unlabeled inputs with a teacher arm, fine-tune a "
                         "student on them, evaluate it beside the teacher")
    dis.add_argument("config")
    dis.add_argument("--teacher", required=True, help="the labelling strategy (NAME@k=K for "
                     "one k of a few-shot sweep)")
    dis.add_argument("--student", required=True, help="the fine_tuned strategy to train")
    dis.add_argument("--unlabeled", help="a CSV/JSONL of inputs (default: the training inputs, "
                     "labels ignored)")
    dis.add_argument("--min-confidence", type=float, help="keep only labels the teacher gave "
                     "with at least this confidence (0-1)")
    dis.add_argument("--out", help="folder (default: reports/NAME-distill)")
    dis.add_argument("--yes", action="store_true", help="start paid work (the teacher's "
                     "requests, a fine-tuning job) without asking; without it the estimate is "
                     "shown and a terminal is asked")
    dis.set_defaults(func=cmd_distill)
    cache = sub.add_parser("cache", help="show or clear the response cache (e.g. after the model "
                           "behind an endpoint changed without its name changing)")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--model", help="clear: only the answers of this model id")
    cache.add_argument("--older-than", type=float, metavar="SECONDS",
                       help="clear: only answers older than this")
    cache.set_defaults(func=cmd_cache)
    hist = sub.add_parser("history", help="accuracy over prompt versions per arm and model, with "
                          "a plateau flag")
    hist.add_argument("config")
    hist.add_argument("--history", metavar="FILE", help="history file (default: $HARNESS_HISTORY, "
                      "else reports/history.jsonl under the working directory)")
    hist.add_argument("--window", type=int, help="versions that must sit inside the best one's "
                      "interval (default: decision.history_window, 3)")
    hist.add_argument("--branch", metavar="NAME", help="only the runs made on this git branch "
                      "(each entry records the branch and commit of the work tree it ran in)")
    hist.set_defaults(func=cmd_history)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 success, 1 run could not complete, 2 bad input, 130 interrupted."""
    from harness.running.outcome import Terminated

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise Terminated

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        args = build_parser().parse_args(argv)
        for name in _PATHS:  # ~ in a path argument is the home folder, as in config paths
            if isinstance(getattr(args, name, None), str):
                setattr(args, name, os.path.expanduser(getattr(args, name)))
        if getattr(args, "limit", None) is not None and args.limit < 1:
            raise InputError("--limit: must be at least 1")
        if getattr(args, "concurrency", None) is not None and args.concurrency < 1:
            raise InputError("--concurrency: must be at least 1")
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # the reader went away (`harness ... | head`): stop quietly, like other command-line tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt as exc:
        print("error: interrupted", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except OSError as exc:
        # a file the harness could not read or write (permissions, a full disk): one line
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The `harness` command (and `python -m harness`): `main`, then exit with its code.

    Before exiting, every object is moved out of the cycle collector's reach (`gc.freeze`), so
    the interpreter's last collection does not walk pandas, matplotlib and the SDK's models
    (about 0.4 s of a short run); atexit handlers and finalisers still run as usual.
    """
    code = main()
    gc.freeze()
    raise SystemExit(code)
