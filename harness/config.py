"""Config files: YAML loaded safely, validated by a JSON Schema, turned into frozen dataclasses.

Every problem is reported with its location (`strategies[1].shots: ...`); unknown keys get a
did-you-mean. Relative paths resolve against the config file's folder.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness.errors import InputError

_NUM = {"type": "number"}
_POS_INT = {"type": "integer", "minimum": 1}
_STR = {"type": "string", "minLength": 1}
_NULLABLE_STR = {"type": ["string", "null"]}

_PRICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "input": {"type": "number", "minimum": 0},
        "cached_input": {"type": "number", "minimum": 0},
        "output": {"type": "number", "minimum": 0},
        "training": {"type": "number", "minimum": 0},
    },
}

_PROMPTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"system": _STR, "user": _STR, "fine_tuned_system": _STR},
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "task", "dataset", "models", "strategies"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "task": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "instructions"],
            "properties": {
                "type": {"enum": ["classification"]},
                "instructions": _STR,
                "labels": {
                    "oneOf": [
                        {"type": "array", "items": _STR, "minItems": 2, "uniqueItems": True},
                        _STR,
                        {"type": "null"},
                    ]
                },
                "output_schema": {"type": ["object", "string"]},
                "prompts": _PROMPTS,
            },
        },
        "dataset": {
            "type": "object",
            "additionalProperties": False,
            "required": ["eval", "input", "target"],
            "properties": {
                "eval": _STR,
                "train": _NULLABLE_STR,
                "input": _STR,
                "target": _STR,
                "id": _NULLABLE_STR,
                "limit": {"type": ["integer", "null"], "minimum": 1},
                "seed": {"type": "integer"},
            },
        },
        "models": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["provider"],
                "properties": {
                    "provider": {"enum": ["local", "openai"]},
                    "model": _STR,
                    "base_url": _NULLABLE_STR,
                    "api_key_env": _NULLABLE_STR,
                    "token_param": {"enum": ["max_tokens", "max_completion_tokens"]},
                    "structured_output": {"enum": ["json_schema", "json_object", "none"]},
                    "timeout": {"type": "number", "exclusiveMinimum": 0},
                    "n_ctx": {"type": "integer", "minimum": 256},
                    "price": _PRICE,
                },
            },
        },
        "strategies": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "type", "model"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                    "type": {"enum": ["zero_shot", "few_shot", "fine_tuned"]},
                    "model": _STR,
                    "shots": {
                        "oneOf": [
                            _POS_INT,
                            {"type": "array", "items": _POS_INT, "minItems": 1, "uniqueItems": True},
                        ]
                    },
                    "selection": {"enum": ["random", "stratified"]},
                    "draws": _POS_INT,
                    "fine_tuned_model": {
                        "oneOf": [
                            _STR,
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {"name": _STR, "train_if_missing": {"type": "boolean"}},
                            },
                        ]
                    },
                    "prompts": _PROMPTS,
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": "few_shot"}}},
                        "then": {"required": ["shots"]},
                    },
                    {
                        "if": {"properties": {"type": {"const": "fine_tuned"}}},
                        "then": {"required": ["fine_tuned_model"]},
                    },
                ],
            },
        },
        "run": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "concurrency": _POS_INT,
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "max_tokens": _POS_INT,
                "seed": {"type": "integer"},
                "timeout": {"type": "number", "exclusiveMinimum": 0},
                "max_attempts": _POS_INT,
                "max_wait": {"type": "number", "minimum": 0},
                "max_retry_after": {"type": "number", "minimum": 0},
                "requests_per_minute": {"type": "number", "exclusiveMinimum": 0},
                "tokens_per_minute": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "decision": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_gain": {"type": "number", "minimum": 0},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "equivalence_margin": {"type": "number", "minimum": 0},
                "monthly_volume": {"type": ["number", "null"], "minimum": 0},
                "horizon_months": {"type": "number", "exclusiveMinimum": 0},
                "history_window": _POS_INT,
                "bootstrap": {"type": "integer", "minimum": 100},
            },
        },
        "finetune": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "epochs": {"type": "number", "exclusiveMinimum": 0},
                "batch_size": {"oneOf": [_POS_INT, {"const": "auto"}]},
                "learning_rate_multiplier": {"oneOf": [_NUM, {"const": "auto"}]},
                "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                "rank": _POS_INT,
                "alpha": {"type": "number", "exclusiveMinimum": 0},
                "max_length": _POS_INT,
                "per_label": {"type": ["integer", "null"], "minimum": 1},
                "validation_fraction": {"type": "number", "minimum": 0, "maximum": 0.5},
                "suffix": _STR,
                "seed": {"type": "integer"},
                "poll_interval": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "gate": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "min_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                "min_schema_compliance": {"type": "number", "minimum": 0, "maximum": 1},
                "max_drop": {"type": "number", "minimum": 0, "maximum": 1},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
        },
    },
}

LOCAL_MODEL_ALIAS = "smollm2-135m-instruct"


@dataclass(frozen=True)
class Prompts:
    """Prompt template overrides; None means the built-in default."""

    system: str | None = None
    user: str | None = None
    fine_tuned_system: str | None = None

    def merged(self, other: Prompts) -> Prompts:
        """This template set with `other`'s non-empty entries on top."""
        return Prompts(
            system=other.system or self.system,
            user=other.user or self.user,
            fine_tuned_system=other.fine_tuned_system or self.fine_tuned_system,
        )


@dataclass(frozen=True)
class Price:
    """USD per one million tokens."""

    input: float = 0.0
    cached_input: float | None = None
    output: float = 0.0
    training: float | None = None


@dataclass(frozen=True)
class TaskConfig:
    type: str
    instructions: str
    labels: tuple[str, ...] | None
    output_schema: dict[str, Any] | None
    prompts: Prompts


@dataclass(frozen=True)
class DatasetConfig:
    eval: Path
    train: Path | None
    input: str
    target: str
    id: str | None
    limit: int | None
    seed: int


@dataclass(frozen=True)
class ModelConfig:
    name: str
    provider: str
    model: str
    base_url: str | None
    api_key_env: str | None
    token_param: str
    structured_output: str
    timeout: float
    n_ctx: int
    price: Price | None


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    type: str
    model: str
    shots: tuple[int, ...] = ()
    selection: str = "stratified"
    draws: int = 1
    fine_tuned_model: str | None = None
    train_if_missing: bool = False
    prompts: Prompts = field(default_factory=Prompts)


@dataclass(frozen=True)
class RunConfig:
    concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int = 64
    seed: int = 0
    timeout: float = 60.0
    max_attempts: int = 6
    max_wait: float = 300.0
    max_retry_after: float = 600.0
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None


@dataclass(frozen=True)
class DecisionConfig:
    min_gain: float = 0.02
    alpha: float = 0.05
    equivalence_margin: float = 0.02
    monthly_volume: float | None = None
    horizon_months: float = 3.0
    history_window: int = 3
    bootstrap: int = 2000


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: float = 3.0
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    learning_rate: float = 2e-3
    rank: int = 8
    alpha: float = 16.0
    max_length: int = 256
    per_label: int | None = None
    validation_fraction: float = 0.1
    suffix: str | None = None
    seed: int = 0
    poll_interval: float = 10.0


@dataclass(frozen=True)
class GateConfig:
    min_accuracy: float | None = None
    min_schema_compliance: float | None = None
    max_drop: float | None = None
    alpha: float | None = None


@dataclass(frozen=True)
class Config:
    """A validated config file."""

    name: str
    path: Path
    task: TaskConfig
    dataset: DatasetConfig
    models: dict[str, ModelConfig]
    strategies: tuple[StrategyConfig, ...]
    run: RunConfig
    decision: DecisionConfig
    finetune: FinetuneConfig
    gate: GateConfig
    raw: dict[str, Any]
    sha256: str

    def strategy(self, name: str) -> StrategyConfig:
        """The strategy called `name`."""
        for s in self.strategies:
            if s.name == name:
                return s
        raise InputError(f"{self.path}: no strategy named {name!r}")


def _location(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_at(schema: dict[str, Any], path: Any) -> dict[str, Any]:
    """The sub-schema that describes the object at `path` (for did-you-mean)."""
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            node = node.get("additionalProperties", {}) or {}
    return node


def _describe(error: jsonschema.ValidationError) -> str:
    where = _location(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(_schema_at(SCHEMA, error.absolute_path).get("properties", {}))
        extra = [k for k in error.instance if k not in known]
        parts = []
        for key in extra:
            guess = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known keys: {', '.join(known)})"
            parts.append(f"{where}: unknown key {key!r}{hint}")
        return "; ".join(parts)
    if error.validator == "oneOf" and error.context:
        best = min(error.context, key=lambda e: len(e.message))
        return f"{where}: {best.message}"
    return f"{where}: {error.message}"


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config file {path}: {exc}") from None
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            loc = f"line {mark.line + 1}, column {mark.column + 1}"
            raise InputError(f"{path}: malformed YAML at {loc}: {problem}") from None
        raise InputError(f"{path}: malformed YAML: {problem}") from None


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _read_labels(path: Path, where: str) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{where}: cannot read labels file {path}: {exc.strerror}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: {path} is not valid JSON (line {exc.lineno})") from None
    else:
        data = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(data, list) or not all(isinstance(x, str) and x for x in data):
        raise InputError(f"{where}: {path} must hold a list of non-empty label strings")
    if len(set(data)) != len(data):
        raise InputError(f"{where}: {path} lists a label twice")
    if len(data) < 2:
        raise InputError(f"{where}: {path} must list at least two labels")
    return tuple(data)


def _output_schema(value: Any, base: Path) -> dict[str, Any] | None:
    if value is None:
        return None
    where = "task.output_schema"
    if isinstance(value, str):
        path = _resolve(base, value)
        assert path is not None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{where}: cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: {path} is not valid JSON (line {exc.lineno})") from None
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as exc:
        loc = ".".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InputError(f"{where}: invalid JSON Schema at {loc}: {exc.message}") from None
    props = value.get("properties", {}) if isinstance(value, dict) else {}
    if "label" not in props:
        raise InputError(f"{where}: a classification schema needs a 'label' property")
    return dict(value)


def _prompts(d: Mapping[str, Any] | None) -> Prompts:
    d = d or {}
    return Prompts(d.get("system"), d.get("user"), d.get("fine_tuned_system"))


def _model(name: str, d: Mapping[str, Any], run_timeout: float) -> ModelConfig:
    provider = d["provider"]
    where = f"models.{name}"
    if provider == "openai" and "model" not in d:
        raise InputError(f"{where}: 'model' is required for provider openai")
    price = d.get("price")
    return ModelConfig(
        name=name,
        provider=provider,
        model=d.get("model", LOCAL_MODEL_ALIAS),
        base_url=d.get("base_url"),
        api_key_env=d.get("api_key_env", "OPENAI_API_KEY" if provider == "openai" else None),
        token_param=d.get("token_param", "max_tokens"),
        structured_output=d.get(
            "structured_output", "json_object" if provider == "local" else "json_schema"
        ),
        timeout=float(d.get("timeout", run_timeout)),
        n_ctx=int(d.get("n_ctx", 4096)),
        price=Price(
            input=price.get("input", 0.0),
            cached_input=price.get("cached_input"),
            output=price.get("output", 0.0),
            training=price.get("training"),
        )
        if price
        else None,
    )


def _strategy(i: int, d: Mapping[str, Any], models: Mapping[str, ModelConfig]) -> StrategyConfig:
    where = f"strategies[{i}]"
    if d["model"] not in models:
        guess = difflib.get_close_matches(d["model"], list(models), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else f" (models: {', '.join(models)})"
        raise InputError(f"{where}.model: unknown model {d['model']!r}{hint}")
    shots = d.get("shots", ())
    shots = (shots,) if isinstance(shots, int) else tuple(sorted(shots))
    if d["type"] != "few_shot" and ("shots" in d or "draws" in d or "selection" in d):
        raise InputError(f"{where}: shots/draws/selection apply only to type few_shot")
    ft = d.get("fine_tuned_model")
    if d["type"] != "fine_tuned" and ft is not None:
        raise InputError(f"{where}.fine_tuned_model: only for type fine_tuned")
    ft_name, train = (ft.get("name"), bool(ft.get("train_if_missing"))) if isinstance(
        ft, dict
    ) else (ft, False)
    return StrategyConfig(
        name=d["name"],
        type=d["type"],
        model=d["model"],
        shots=shots,
        selection=d.get("selection", "stratified"),
        draws=d.get("draws", 1),
        fine_tuned_model=ft_name,
        train_if_missing=train,
        prompts=_prompts(d.get("prompts")),
    )


def parse_config(data: Any, path: Path, text: str = "") -> Config:
    """Validate an already-parsed YAML document and build a Config (raises InputError)."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config must be a YAML mapping (got {type(data).__name__})")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        msgs = [_describe(e) for e in errors]
        raise InputError(f"{path}: " + "; ".join(dict.fromkeys(msgs)))
    base = path.parent
    run = RunConfig(**data.get("run", {}))
    models = {n: _model(n, m, run.timeout) for n, m in data["models"].items()}
    strategies = tuple(_strategy(i, s, models) for i, s in enumerate(data["strategies"]))
    names = [s.name for s in strategies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: strategies: duplicate strategy name {dupes[0]!r}")
    t = data["task"]
    labels = t.get("labels")
    if isinstance(labels, str):
        lpath = _resolve(base, labels)
        assert lpath is not None
        labels = _read_labels(lpath, "task.labels")
    ds = data["dataset"]
    eval_path = _resolve(base, ds["eval"])
    assert eval_path is not None
    ft_data = data.get("finetune", {})
    return Config(
        name=data["name"],
        path=path,
        task=TaskConfig(
            type=t["type"],
            instructions=t["instructions"].strip(),
            labels=tuple(labels) if labels else None,
            output_schema=_output_schema(t.get("output_schema"), base),
            prompts=_prompts(t.get("prompts")),
        ),
        dataset=DatasetConfig(
            eval=eval_path,
            train=_resolve(base, ds.get("train")),
            input=ds["input"],
            target=ds["target"],
            id=ds.get("id"),
            limit=ds.get("limit"),
            seed=ds.get("seed", 0),
        ),
        models=models,
        strategies=strategies,
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
    from dataclasses import replace

    limit = run_overrides.pop("limit", None)
    run = replace(cfg.run, **{k: v for k, v in run_overrides.items() if v is not None})
    ds = replace(cfg.dataset, limit=limit) if limit is not None else cfg.dataset
    return replace(cfg, run=run, dataset=ds)


def slug(text: str) -> str:
    """A file-name-safe version of `text`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
