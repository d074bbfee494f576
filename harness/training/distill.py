"""`harness distill`: a teacher arm labels an unlabeled pool, a student is fine-tuned on those
labels and registered as distilled, and student, teacher and (when it exists) the student
trained on gold labels are evaluated side by side.

1. The pool: `--unlabeled FILE` (its `dataset.input` field or template; rows numbered from 0)
   or the training inputs with their labels ignored. An input that is also an eval
   input is dropped (leakage), and the count is reported.
2. The teacher answers the pool through the runner (cache, retries, a resumable folder
   `OUT/teacher/`); nothing is scored, there being no gold.
3. Kept: answers that parse and meet the output schema, and with `--min-confidence X` only those
   whose confidence (the teacher's `confidence: logprob | agreement`) is at least X.
   `OUT/distilled.jsonl` holds each with its provenance (teacher arm, model id, prompt hash,
   confidence).
4. The student (a `fine_tuned` strategy) is fine-tuned on them (finetune: local LoRA or an
   OpenAI job) and registered as `NAME-distilled` (the student's name with `-distilled`, unless
   it says so already), with the provenance in the registry entry. Idempotent: the same labels,
   base model and settings reuse the registered model.
5. An evaluation run `OUT/eval/` of the teacher, the distilled student and the student itself
   when its gold-trained model exists; `OUT/distill.json` adds each arm's agreement with the
   teacher on the eval set.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import Config, StrategyConfig
from harness.dataset import Data, Example, Targets, load_data, normalise, read_examples
from harness.errors import InputError, RunError
from harness.files import write_json_atomic, write_text_atomic
from harness.kinds import ArmId
from harness.model.pricing import price_of, training_cost
from harness.model.registry import FineTune, Registry
from harness.running.plan import Plan, plan
from harness.running.preflight import preflight
from harness.running.runner import Runner
from harness.running.store import read_records
from harness.strategies import is_fine_tuned
from harness.tasks import gold_reader
from harness.training.data import build_training_data
from harness.training.identity import hyperparameters
from harness.training.workflow import Confirm, Progress, ensure_fine_tunes, finetune

Log = Callable[[str], None]
SUFFIX = "-distilled"


def _teacher(cfg: Config, name: str) -> StrategyConfig:
    """The teacher strategy: a strategy name, or NAME@k=K of a few-shot one (that k only)."""
    try:
        arm = ArmId.parse(name)
    except ValueError:
        raise InputError(f"--teacher: {name!r} is not a strategy name or NAME@k=K") from None
    base, k = arm.base, "" if arm.k is None else str(arm.k)
    s = next((x for x in cfg.strategies if x.name == base), None)
    if s is None:
        raise InputError(f"--teacher: no strategy named {base!r} (strategies: "
                         f"{', '.join(x.name for x in cfg.strategies)})")
    if s.variants:
        raise InputError(f"--teacher: {base} has prompt variants, so it is several arms; give "
                         "the variant you want as a strategy of its own")
    if s.type == "few_shot":
        if not k and len(s.shots) != 1:
            raise InputError(f"--teacher: {base} is swept over k = {list(s.shots)}; name one, "
                             f"e.g. {base}@k={s.shots[-1]}")
        shots = (int(k),) if k else s.shots
        if shots[0] not in s.shots:
            raise InputError(f"--teacher: {base} has no k={shots[0]} (shots: {list(s.shots)})")
        s = dataclasses.replace(s, shots=shots, draws=1)
    return s


def _student(cfg: Config, name: str) -> StrategyConfig:
    s = next((x for x in cfg.strategies if x.name == name), None)
    if s is None or not is_fine_tuned(s.type):
        raise InputError(f"--student: {name!r} is not a fine_tuned strategy of the config")
    return s


def distilled_name(student: StrategyConfig) -> str:
    """The registry name of the distilled student: its name with -distilled (once)."""
    name = str(student.fine_tuned_model).removeprefix("local-ft:")
    return name if "distil" in name else name + SUFFIX


def pool(cfg: Config, data: Data, unlabeled: Path | None, log: Log) -> tuple[Example, ...]:
    """The unlabeled inputs the teacher labels, eval inputs removed (see the module)."""
    if unlabeled is not None:
        # inputs only: no target, no cluster, and row numbers as ids (the file need not have ids)
        ds = dataclasses.replace(cfg.dataset, target="", target_fields=None, cluster=None, id=None)
        raw = read_examples(unlabeled, ds, "--unlabeled", _UNLABELED)
        examples = [Example(f"u{ex.id}", ex.input, None) for ex in raw]
    else:
        examples = [Example(f"t{ex.id}", ex.input, None) for ex in data.train]
    seen = {normalise(ex.input) for ex in data.eval}
    kept = [ex for ex in examples if normalise(ex.input) not in seen]
    log(f"distill: {len(examples)} unlabeled inputs, {len(examples) - len(kept)} removed as "
        "eval inputs (leakage)")
    if not kept:
        raise InputError("distill: no unlabeled input is left once eval inputs are removed")
    return tuple(kept)


# unlabeled inputs: no target field is read or checked
_UNLABELED = Targets(parse=lambda _raw: None, check=lambda _t: None, stratum=lambda _t: "")


def _not_self(t_cfg: StrategyConfig, s_cfg: StrategyConfig) -> None:
    """Refuse a teacher that is the student, or whose answers are the student's own model's."""
    if t_cfg.name == s_cfg.name:
        raise InputError(f"--teacher {t_cfg.name} is the student: a model cannot be distilled "
                         "from its own answers; name a prompted (or other) teacher")
    if is_fine_tuned(t_cfg.type):
        own = {str(s_cfg.fine_tuned_model), distilled_name(s_cfg)}
        name = str(t_cfg.fine_tuned_model).removeprefix("local-ft:")
        if name in own or str(t_cfg.fine_tuned_model) in own:
            raise InputError(f"--teacher {t_cfg.name}: its model {t_cfg.fine_tuned_model!r} is the "
                             f"student {s_cfg.name}'s own; the student would learn its own answers")


def _paid(cfg: Config, model: str) -> bool:
    return cfg.models[model].provider != "local"


def _consent(cfg: Config, p: Plan, inputs: tuple[Example, ...], out: Path, s_cfg: StrategyConfig,
             log: Log, confirm: Confirm | None) -> bool:
    """Ask once before paid labelling (and the paid training it leads to): the estimate is
    logged and `confirm` must agree (False: RunError, nothing requested). True when consent was
    given here (the fine-tune then asks nothing again); False when nothing paid was to be
    labelled, so that a new paid job still asks on its own."""
    done = {r.example_id for r in read_records(out / "teacher") if not r.endpoint_failed} \
        if (out / "teacher").is_dir() else set()
    todo = tuple(ex for ex in inputs if ex.id not in done)
    if not todo or not _paid(cfg, p.strategies[0].arm.model):
        return False
    pf = preflight(dataclasses.replace(p, data=dataclasses.replace(p.data, eval=todo)))
    cost = "cost unknown (add price: to the model)" if pf.cost_usd is None \
        else f"<= ${pf.cost_usd:,.4f}"
    lines = [f"estimate for distillation: the teacher {p.strategies[0].arm.strategy} labels "
             f"{len(todo):,} inputs ({pf.requests:,} requests on "
             f"{p.strategies[0].arm.model_id}), {cost}"]
    if _paid(cfg, s_cfg.model):
        student = cfg.models[s_cfg.model]
        gold = build_training_data(cfg, s_cfg, p.data, p.task)
        epochs = hyperparameters(cfg, student.provider).get("n_epochs", 1)
        billed = round(gold.tokens_per_example * len(inputs) * float(epochs))
        price = price_of(student, student.model)
        money = training_cost(price, billed) if price is not None else None
        cap = cfg.finetune.max_cost_usd
        if cap is not None and (money is None or money > cap):
            raise InputError(f"finetune.max_cost_usd: the distillation's fine-tuning job on "
                             f"{student.model} could cost "
                             + (f"~${money:,.2f}" if money is not None else "an unknown amount")
                             + f", above the cap ${cap:g}; nothing requested")
        lines.append(f"then a fine-tuning job on {student.model}: ~{billed:,} trained tokens "
                     + (f"(~${money:.2f})" if money is not None else "(cost unknown)")
                     + " if every label is kept")
    estimate = "; ".join(lines)
    log(estimate)
    if confirm is not None and not confirm(estimate):
        raise RunError("distillation not confirmed: nothing requested")
    return True


def distill(cfg: Config, teacher: str, student: str, *, out: Path,
            unlabeled: Path | None = None, min_confidence: float | None = None,
            progress: Progress | None = None, log: Log = lambda _m: None,
            registry: Registry | None = None,
            base_urls: dict[str, str | list[str]] | None = None,
            confirm: Confirm | None = None) -> dict[str, Any]:
    """Label, filter, fine-tune, register and evaluate (see the module); the summary written
    to OUT/distill.json.

    Paid work (a teacher on a provider's API, a provider's fine-tuning job) starts only after
    the estimate is logged and `confirm` agrees, as for `finetune`; without `confirm` the call
    itself is the consent."""
    t_cfg, s_cfg = _teacher(cfg, teacher), _student(cfg, student)
    _not_self(t_cfg, s_cfg)
    if min_confidence is not None and t_cfg.confidence is None:
        raise InputError(f"--min-confidence: the teacher {teacher} records no confidence; set "
                         "confidence: logprob (or agreement with samples) on it")
    data = load_data(cfg, gold_reader(cfg.task))
    inputs = pool(cfg, data, unlabeled, log)
    labelling = dataclasses.replace(cfg, strategies=(t_cfg,), cascades=())
    # a fine-tuned teacher marked train_if_missing is trained first, as `harness run` would
    p = ensure_fine_tunes(plan(labelling, registry), progress=progress, log=log,
                          registry=registry)
    if p.strategies[0].arm.unavailable:
        raise InputError(f"--teacher: {teacher}: {p.strategies[0].arm.unavailable}")
    own = {e.model_id for n in (str(s_cfg.fine_tuned_model), distilled_name(s_cfg))
           for e in (registry or Registry()).entries(n)}
    if p.strategies[0].arm.model_id in own:
        raise InputError(f"--teacher {teacher}: it answers with {p.strategies[0].arm.model_id}, "
                         f"the student {student}'s own model")
    asked = _consent(cfg, p, inputs, out, s_cfg, log, confirm)
    p = dataclasses.replace(p, data=dataclasses.replace(p.data, eval=inputs))
    Runner(p, out / "teacher", base_urls=base_urls, log=log).execute()
    answers = read_records(out / "teacher")
    usable = [r for r in answers if r.parse_ok and r.schema_valid and not r.request_failed]
    conf = [r.confidence if r.confidence is not None else r.vote_share for r in usable]
    keep = [(r, c) for r, c in zip(usable, conf, strict=True)
            if min_confidence is None or (c is not None and c >= min_confidence)]
    log(f"distill: the teacher answered {len(answers)}; {len(usable)} usable (parse and "
        f"schema), {len(keep)} kept" + (f" at confidence >= {min_confidence:g}"
                                         if min_confidence is not None else ""))
    if not keep:
        raise InputError("distill: the teacher gave no usable label to train on")
    by_id = {ex.id: ex for ex in inputs}
    rows = [{"id": r.example_id, "input": by_id[r.example_id].input, "target": r.prediction,
             "teacher_arm": r.arm, "teacher_model_id": r.model_id,
             "prompt_sha256": r.prompt_sha256, "confidence": c} for r, c in keep]
    write_text_atomic(out / "distilled.jsonl",
                      "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    given = {str(x["target"]) for x in rows}
    never = [lab for lab in data.labels if lab not in given]
    if never:
        log(f"warning: distill: no kept label says {', '.join(never[:5])}"
            f"{' and more' if len(never) > 5 else ''}; the student cannot learn "
            f"{'it' if len(never) == 1 else 'them'}")
    name = distilled_name(s_cfg)
    tuned = dataclasses.replace(s_cfg, name=f"{s_cfg.name}{SUFFIX}", fine_tuned_model=name)
    train = tuple(Example(x["id"], x["input"], x["target"]) for x in rows)
    provenance = {"distilled_from": teacher, "teacher_model_id": keep[0][0].model_id,
                  "teacher_prompt_sha256": keep[0][0].prompt_sha256, "labels": len(rows),
                  "min_confidence": min_confidence, "pool": str(unlabeled or "dataset.train")}
    entry = finetune(dataclasses.replace(cfg, strategies=(*cfg.strategies, tuned)), tuned.name,
                     out=out / "training", progress=progress, log=log, registry=registry,
                     train=train, extra=provenance, confirm=None if asked else confirm)
    evaluated = [t_cfg, tuned] + ([s_cfg] if _exists(s_cfg, registry) else [])
    ev_cfg = dataclasses.replace(cfg, strategies=tuple(evaluated), cascades=())
    ev = ensure_fine_tunes(plan(ev_cfg, registry, pins={tuned.name: entry.key}),
                           progress=progress, log=log, registry=registry)
    Runner(ev, out / "eval", base_urls=base_urls, log=log, allow_missing=True).execute()
    summary = _agreement(out / "eval", t_cfg.name, entry, provenance)
    write_json_atomic(out / "distill.json", summary)
    return summary


def _exists(s: StrategyConfig, registry: Registry | None) -> bool:
    name = str(s.fine_tuned_model)
    return name.startswith("ft:") or (registry or Registry()).get(
        name.removeprefix("local-ft:")) is not None


def _agreement(run_dir: Path, teacher: str, entry: FineTune, provenance: dict[str, Any]
               ) -> dict[str, Any]:
    """Per evaluated arm: accuracy, and the share of eval examples whose answer is the
    teacher's."""
    records = read_records(run_dir)
    teacher_of = {r.example_id: r.prediction for r in records if r.strategy == teacher
                  and not r.request_failed}
    arms: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.endpoint_failed:
            continue
        a = arms.setdefault(r.strategy, {"n": 0, "right": 0, "agree": 0, "model_id": r.model_id})
        a["n"] += 1
        a["right"] += bool(r.correct)
        a["agree"] += r.example_id in teacher_of and r.prediction == teacher_of[r.example_id]
    return {"student": entry.name, "student_model_id": entry.model_id, **provenance,
            "eval_run": str(run_dir),
            "arms": {s: {"n": a["n"], "accuracy": a["right"] / a["n"] if a["n"] else None,
                         "teacher_agreement": a["agree"] / a["n"] if a["n"] else None,
                         "model_id": a["model_id"]} for s, a in arms.items()}}


def distill_lines(s: dict[str, Any]) -> list[str]:
    """The distillation's summary as the terminal shows it."""
    out = [f"{s['student']}: {s['student_model_id']}, distilled from {s['distilled_from']} on "
           f"{s['labels']} labels"]
    for name, a in s["arms"].items():
        cost = "n/a" if a.get("cost_per_1k") is None else f"${a['cost_per_1k']:.4g}"
        acc = "n/a" if a["accuracy"] is None else f"{a['accuracy']:.3f}"
        agree = "n/a" if a["teacher_agreement"] is None else f"{a['teacher_agreement']:.3f}"
        out.append(f"  {name:<28} n={a['n']:<5} acc {acc}  teacher agreement {agree}  "
                   f"cost/1k {cost}")
    out.append(f"reports: {s['eval_run']}/ and distill.json beside it")
    return out


__all__ = ["distill", "distill_lines", "distilled_name", "pool"]
