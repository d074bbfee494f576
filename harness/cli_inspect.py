"""The CLI's commands that read what is on disk and call no model: `harness history`, `harness
diff` and `harness cache` (harness/cli.py parses the arguments and handles errors)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli_progress import log as _log
from harness.errors import InputError


def cmd_history(args: argparse.Namespace) -> int:
    from harness.analysis.history import (
        HISTORY_ENV,
        by_model,
        describe_dimensions,
        describe_where,
        history_path,
        on_branch,
        read_history_checked,
        trajectory,
        tried_across,
    )
    from harness.api import load_config

    cfg = load_config(args.config)
    path = history_path(args.history)
    records, warnings = read_history_checked(path, cfg.name)
    for warning in warnings:
        _log(f"warning: {warning}")
    if not records:
        raise InputError(f"no history for {cfg.name!r} in {path} (run `harness run {args.config}` "
                         f"first; the file is --history FILE, else ${HISTORY_ENV}, else "
                         "reports/history.jsonl)")
    kept = on_branch(records, args.branch)
    for arm in trajectory(kept, window=args.window or cfg.decision.history_window):
        dims = describe_dimensions(arm.versions[-1])
        model = arm.model_id or "a model not recorded"
        print(f"{arm.arm} on {model}{f' ({dims})' if dims else ''}:")
        for i, v in enumerate(arm.versions, start=1):
            where = describe_where(v)
            print(f"  v{i} prompt {v['prompt_sha256']}  acc {v['accuracy']:.3f} "
                  f"[{v['ci_low']:.3f}, {v['ci_high']:.3f}]  n={v['n']}  {v['timestamp']}"
                  f"{f'  {where}' if where else ''}")
        flag = "PLATEAU" if arm.plateaued else "no plateau"
        print(f"  {flag}: {arm.reason}")
    for model_id, recs in by_model(kept).items():
        space = tried_across(recs)
        if len(space) > 1:  # more than one setting was tried: show the space across runs
            print(f"tried across runs on {model_id or 'a model not recorded'} (best prompting "
                  "arm per setting):")
            for dimension, setting, best, acc, runs in space:
                print(f"  {dimension:<10} {setting:<22} best {best} {acc:.3f}  ({runs} run(s))")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from harness.analysis.diff import diff_runs
    from harness.report.diff import summary_lines, write_diff

    d = diff_runs(Path(args.run_a), Path(args.run_b), arm=args.arm)
    out = Path(args.out) if args.out else Path(args.run_b)
    csv_path, html_path = write_diff(d, out)
    print("\n".join(summary_lines(d)))
    print(f"diff: {csv_path}, {html_path}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness.model.cache import open_cache
    from harness.paths import cache_dir

    if args.older_than is not None and args.older_than < 0:
        raise InputError("--older-than: must be 0 or more seconds")
    path = cache_dir() / "responses.sqlite"
    if not path.exists():
        print(f"no response cache at {path}")
        return 0
    cache = open_cache(path)
    try:
        if args.action == "clear":
            n = cache.clear(model=args.model, older_than=args.older_than)
            print(f"removed {n} cached answer(s) from {path}")
        else:
            print(f"response cache: {path} ({path.stat().st_size / 1e6:.1f} MB)")
            for model, n, oldest, newest in cache.stats():
                print(f"  {model:<40} {n:>8} answers, newest {newest / 3600:.1f} h old, "
                      f"oldest {oldest / 3600:.1f} h old")
    finally:
        cache.close()
    return 0
