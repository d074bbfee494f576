"""Config files: YAML loaded safely, validated by a JSON Schema, turned into frozen dataclasses.

Every problem is reported with its location (`strategies[1].shots: ...`); unknown keys get a
did-you-mean. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from harness.config.cascade import arm_strategies, confidence_problems, is_cascade, parse_cascade
from harness.config.models import parse_model
from harness.config.schema import SCHEMA, boolean_problem, describe, path_key, yaml_source
from harness.config.strategy import parse_prompts, parse_strategy
from harness.config.types import (
    Config,
    DatasetConfig,
    DecisionConfig,
    FinetuneConfig,
    GateConfig,
    RunConfig,
    SequentialConfig,
    TaskConfig,
    batch_mode,
)
from harness.errors import InputError
from harness.files import read_text_checked
from harness.kinds import EXTRACTION, FEW_SHOT

_T = TypeVar("_T")


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]  # untyped without types-PyYAML
    """yaml.SafeLoader that rejects a key given twice in one mapping (YAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given at line {first.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _load_yaml(path: Path) -> tuple[Any, str]:
    """The parsed document and the file's text (raises InputError with line and column)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read config file {path}: not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_StrictLoader), text  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and (
            mark is None or (context_mark.line, context_mark.column) != (mark.line, mark.column)
        ):
            problem += f" ({context} that starts at {_mark(context_mark)})"
        if mark is not None:
            raise InputError(f"{path}: malformed YAML at {_mark(mark)}: {problem}") from None
        raise InputError(f"{path}: malformed YAML: {problem}") from None


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _check_labels(labels: list[Any], where: str) -> tuple[str, ...]:
    """Labels are non-empty strings (surrounding blanks ignored), at least two, none twice."""
    if not all(isinstance(x, str) and x.strip() for x in labels):
        raise InputError(f"{where} must hold a list of non-empty label strings")
    cleaned = [x.strip() for x in labels]
    dupes = sorted({x for x in cleaned if cleaned.count(x) > 1})
    if dupes:
        raise InputError(f"{where} lists the label {dupes[0]!r} twice")
    if len(cleaned) < 2:
        raise InputError(f"{where} must list at least two labels")
    return tuple(cleaned)


def _yaml_boolean_labels(labels: list[Any], text: str, where: str) -> str:
    """The problem with a YAML labels file whose list holds booleans (unquoted yes/no...)."""
    source = yaml_source(text)
    return f"{where}: " + boolean_problem([(f"item {i + 1}", x, source([i]))
                                           for i, x in enumerate(labels) if isinstance(x, bool)])


def _read_labels(path: Path, where: str) -> tuple[str, ...]:
    """Labels from a .json or .yaml list, or any other text file with one label a line."""
    text = read_text_checked(path, where, "labels file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
    elif suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at {_mark(mark)}" if mark is not None else ""
            raise InputError(f"{where}: {path} is not valid YAML{at}") from None
        if isinstance(data, list) and any(isinstance(x, bool) for x in data):
            raise InputError(_yaml_boolean_labels(data, text, f"{where}: {path}"))
    else:
        data = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(data, list):
        raise InputError(f"{where}: {path} must hold a list of non-empty label strings "
                         f"(got {type(data).__name__})")
    return _check_labels(data, f"{where}: {path}")


def _schema_problem(error: jsonschema.ValidationError) -> str:
    """`where: what` for one way a JSON Schema breaks the meta-schema, with a did-you-mean."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        relevant = [e for e in error.context if e.validator != "type"]
        if relevant:
            error = relevant[0]
    loc = ".".join(str(p) for p in error.absolute_path) or "(root)"
    hint = ""
    if error.validator == "enum" and isinstance(error.instance, str):
        guess = difflib.get_close_matches(error.instance, [str(v) for v in error.validator_value], n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"{loc}: {error.message}{hint}"


def _output_schema(value: Any, base: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    where = "task.output_schema"
    if isinstance(value, str):
        path = _resolve(base, value)
        assert path is not None
        text = read_text_checked(path, where, "schema file")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: the schema must be a JSON object (got {type(value).__name__})")
    meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
    problems = sorted(meta.iter_errors(value), key=lambda e: path_key(e.absolute_path))
    if problems:
        msgs = [_schema_problem(e) for e in problems]
        raise InputError(f"{where}: invalid JSON Schema at " + "; ".join(dict.fromkeys(msgs)))
    return dict(value)


def _collect(problems: list[str], fn: Callable[..., _T], *args: Any) -> _T | None:
    """fn(*args), or None with its InputError added to `problems` (to report them all at once)."""
    try:
        return fn(*args)
    except InputError as exc:
        problems.append(str(exc))
        return None


def parse_config(data: Any, path: Path, text: str = "") -> Config:
    """Validate an already-parsed YAML document and build a Config (raises InputError).

    Every problem found is reported in the one error, each with its location.
    """
    if data is None:
        raise InputError(f"{path}: the config file is empty")
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config must be a YAML mapping (got {type(data).__name__})")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: path_key(e.absolute_path))
    if errors:
        source = yaml_source(text) if text else None
        msgs = [describe(e, source) for e in errors]
        raise InputError(f"{path}: " + "; ".join(dict.fromkeys(msgs)))
    base = path.parent
    problems: list[str] = []
    run_data = dict(data.get("run", {}))
    run = RunConfig(**{**run_data, "sequential": SequentialConfig(**run_data.get("sequential", {}))})
    models = {n: parse_model(n, m, run.timeout, problems) for n, m in data["models"].items()}
    for name, m in models.items():
        if batch_mode(m, run) and m.provider != "openai":
            where = f"models.{name}.mode" if m.mode else "run.mode"
            problems.append(f"{where}: batch mode needs the OpenAI Batch API (provider openai); "
                            f"set models.{name}.mode: online for the local model")
    strategies = tuple(parse_strategy(i, s, list(models), problems, base, run)
                       for i, s in enumerate(data["strategies"]) if not is_cascade(s))
    cascades = tuple(parse_cascade(i, s, list(arm_strategies(strategies)), problems)
                     for i, s in enumerate(data["strategies"]) if is_cascade(s))
    problems += confidence_problems(data["strategies"], strategies)
    if not strategies:
        problems.append("strategies: only cascades; a cascade routes between other strategies")
    names = [s.name for s in strategies] + [c.name for c in cascades]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"strategies: duplicate strategy name {dupe!r}")
    t = data["task"]
    labels = t.get("labels")
    if isinstance(labels, str):
        lpath = _resolve(base, labels)
        assert lpath is not None
        labels = _collect(problems, _read_labels, lpath, "task.labels")
    elif isinstance(labels, list):
        labels = _collect(problems, _check_labels, labels, "task.labels")
    schema = _collect(problems, _output_schema, t.get("output_schema"), base)
    ds = data["dataset"]
    extraction = t["type"] == EXTRACTION
    if extraction and t.get("labels") is not None:
        problems.append("task.labels: labels do not apply to extraction (the answer's fields "
                        "are the properties of task.output_schema)")
    if not extraction and t.get("match") is not None:
        problems.append("task.match: applies only to task.type extraction")
    if not extraction and ds.get("target_fields") is not None:
        problems.append("dataset.target_fields: applies only to task.type extraction")
    if ds.get("target") is None and ds.get("target_fields") is None:
        problems.append("dataset: give target (the field holding the expected answer)"
                        + (" or target_fields (answer field -> column)" if extraction else ""))
    if (data.get("decision") or {}).get("metric") == "field_f1" and not extraction:
        problems.append("decision.metric: field_f1 applies only to task.type extraction")
    if ds.get("target") is not None and ds.get("target_fields") is not None:
        problems.append("dataset: give either target or target_fields, not both")
    eval_path = _resolve(base, ds["eval"])
    train_path = _resolve(base, ds.get("train"))
    assert eval_path is not None
    if train_path is None:
        for i, st in enumerate(strategies):
            if st.type == FEW_SHOT:
                problems.append(f"strategies[{i}]: type few_shot needs a training pool (set dataset.train)")
    if train_path is not None and train_path == eval_path:
        problems.append("dataset.train: is the same file as dataset.eval (every training example "
                        "would be in the eval set)")
    if problems:
        raise InputError(f"{path}: " + "; ".join(dict.fromkeys(problems)))
    ft_data = data.get("finetune", {})
    return Config(
        name=data["name"],
        path=path,
        task=TaskConfig(
            type=t["type"],
            instructions=t["instructions"].strip(),
            labels=tuple(labels) if labels else None,
            output_schema=schema,
            prompts=parse_prompts(t.get("prompts")),
            match=dict(t.get("match") or {}),
        ),
        dataset=DatasetConfig(
            eval=eval_path,
            train=train_path,
            input=ds["input"],
            target=ds.get("target") or "",
            id=ds.get("id"),
            limit=ds.get("limit"),
            seed=ds.get("seed", 0),
            target_fields=dict(ds["target_fields"]) if ds.get("target_fields") else None,
            cluster=ds.get("cluster"),
        ),
        models=models,
        strategies=strategies,
        cascades=cascades,
        run=run,
        decision=DecisionConfig(**data.get("decision", {})),
        finetune=FinetuneConfig(**ft_data),
        gate=GateConfig(**data.get("gate", {})),
        raw=data,
        sha256=hashlib.sha256(
            (text or json.dumps(data, sort_keys=True)).encode("utf-8")
        ).hexdigest(),
    )


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve a YAML config file (raises InputError on any problem)."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        raise InputError(f"config path is a folder, not a file: {p}")
    data, text = _load_yaml(p)
    return parse_config(data, p, text)


def with_overrides(cfg: Config, **run_overrides: Any) -> Config:
    """A copy of cfg with some run/dataset settings replaced (CLI flags)."""
    limit = run_overrides.pop("limit", None)
    run = replace(cfg.run, **{k: v for k, v in run_overrides.items() if v is not None})
    ds = replace(cfg.dataset, limit=limit) if limit is not None else cfg.dataset
    return replace(cfg, run=run, dataset=ds)
