"""One `strategies[i]` entry of a config, checked and typed (problems gathered, not raised)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness.config.schema_sections import VARIANT
from harness.config.types import Prompts, RunConfig, StrategyConfig, Variant
from harness.errors import InputError
from harness.files import read_text_checked


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def parse_prompts(d: Mapping[str, Any] | None) -> Prompts:
    """The `prompts:` mapping of a task or strategy."""
    d = d or {}
    return Prompts(d.get("system"), d.get("user"), d.get("fine_tuned_system"))


def _variant(where: str, name: str, value: Any, base: Path) -> Variant:
    """One entry of `variants`: a mapping of templates, or a YAML file holding one."""
    if isinstance(value, str):
        path = _resolve(base, value)
        text = read_text_checked(path, f"{where}.variants.{name}", "variant file")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{where}.variants.{name}: {path} is not valid YAML ({exc})") from None
        # the same shape as a variant written in the config (schema.VARIANT)
        wrong = next(jsonschema.Draft202012Validator(VARIANT).iter_errors(value), None)
        if wrong is not None:
            raise InputError(f"{where}.variants.{name}: {path} must hold a mapping of system "
                             "and/or user templates (non-empty strings) and reasoning (true or "
                             f"false): {wrong.message}")
    return Variant(name, Prompts(value.get("system"), value.get("user")),
                   bool(value.get("reasoning", False)))


def fine_tuned_fields(ft: Any) -> tuple[Any, bool, float | None]:
    """A strategy's `fine_tuned_model` as (name, train_if_missing, training_cost_usd): either
    the name alone or a mapping of the three (also how a run folder's raw config is read)."""
    if isinstance(ft, Mapping):
        cost = ft.get("training_cost_usd")
        return ft.get("name"), bool(ft.get("train_if_missing")), None if cost is None else float(cost)
    return ft, False, None


def parse_strategy(i: int, d: Mapping[str, Any], models: list[str], problems: list[str],
                   base: Path, run: RunConfig) -> StrategyConfig:
    """`strategies[i]`, its problems appended to `problems` (variant files read from `base`)."""
    where = f"strategies[{i}]"
    if d["model"] not in models:
        guess = difflib.get_close_matches(d["model"], models, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f" (models: {', '.join(models)})"
        problems.append(f"{where}.model: unknown model {d['model']!r}{hint}")
    shots = d.get("shots", ())
    shots = (shots,) if isinstance(shots, int) else tuple(sorted(shots))
    if d["type"] != "few_shot" and ("shots" in d or "draws" in d or "selection" in d):
        problems.append(f"{where}: shots/draws/selection apply only to type few_shot")
    if "similarity" in d and d.get("selection") != "similar":
        problems.append(f"{where}.similarity: applies only to selection: similar")
    samples, temperature = d.get("samples", 1), d.get("temperature")
    prompting = d["type"] in ("zero_shot", "few_shot")
    if samples > 1 and not prompting:
        problems.append(f"{where}.samples: self-consistency applies to prompting strategies "
                        "(zero_shot, few_shot)")
    elif samples > 1 and (run.temperature if temperature is None else temperature) == 0:
        problems.append(f"{where}.samples: {samples} samples at temperature 0 are {samples} "
                        "copies of one answer; set temperature (e.g. 0.7) on the strategy or "
                        "in run")
    confidence = d.get("confidence")
    if confidence == "agreement" and samples < 2:
        problems.append(f"{where}.confidence: agreement is the vote share of several samples; "
                        "set samples (e.g. 5) and a temperature above 0")
    elif confidence == "logprob" and samples > 1:
        problems.append(f"{where}.confidence: logprob is the probability of one answer; with "
                        f"samples: {samples} use confidence: agreement (the vote share)")
    variants: list[Variant] = []
    if d.get("variants") is not None and not prompting:
        problems.append(f"{where}.variants: prompt variants apply to prompting strategies "
                        "(zero_shot, few_shot)")
    for vname, value in (d.get("variants") or {}).items():
        try:
            variants.append(_variant(where, vname, value, base))
        except InputError as exc:
            problems.append(str(exc))
            continue
        if variants[-1].reasoning and d["type"] != "zero_shot":
            problems.append(f"{where}.variants.{vname}.reasoning: applies to zero_shot strategies "
                            "(few-shot examples carry no reasoning to show)")
    ft = d.get("fine_tuned_model")
    if d["type"] != "fine_tuned" and ft is not None:
        problems.append(f"{where}.fine_tuned_model: only for type fine_tuned")
    ft_name, train, cost = fine_tuned_fields(ft)
    return StrategyConfig(
        name=d["name"],
        type=d["type"],
        model=d["model"],
        shots=shots,
        selection=d.get("selection", "stratified"),
        similarity=d.get("similarity", "tfidf"),
        draws=d.get("draws", 1),
        fine_tuned_model=ft_name,
        train_if_missing=train,
        training_cost_usd=cost,
        prompts=parse_prompts(d.get("prompts")),
        structured_output=d.get("structured_output"),
        samples=samples,
        temperature=None if temperature is None else float(temperature),
        variants=tuple(variants),
        confidence=confidence,
    )
