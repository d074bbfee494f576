"""Typed, versioned run records: one `Record` per (arm, example), one `RunMeta` per run.

These are the only shapes that cross the storage boundary. `to_dict` writes them, `from_dict`
reads them back, from folders of any format version: an older layout is first brought to the
current one by running.migrations (which documents what each version changed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from harness.config import (
    DecisionConfig,
    GateConfig,
    ModelConfig,
    Price,
    RunConfig,
    SequentialConfig,
)
from harness.config.recorded import RecordedConfig, recorded_config
from harness.model.completion import (
    Completion,
    is_endpoint_failure,
    is_request_error,
    request_failure,
)
from harness.model.registry import FineTune
from harness.running.migrations import FORMAT_VERSION as FORMAT_VERSION
from harness.running.migrations import migrate_meta, migrate_record
from harness.tasks import Score, Task, vote_outputs
from harness.tasks.confidence import answer_confidence, answer_fields

_T = TypeVar("_T")


def _known(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """cls(**data) keeping only the fields cls has (newer or older files may carry others)."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def _run_config(data: Mapping[str, Any]) -> RunConfig:
    """run.json's `run` block as a RunConfig (its `sequential` block as a SequentialConfig)."""
    run = _known(RunConfig, data)
    if isinstance(run.sequential, Mapping):
        run = replace(run, sequential=_known(SequentialConfig, run.sequential))
    return run


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False  # True is an int in Python, never a count here
    return isinstance(value, kinds)


# the types a stored record's fields must have (None is allowed where the field may be null)
_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "arm": (str,), "strategy": (str,), "type": (str,), "model": (str,), "model_id": (str,),
    "k": (int,), "draw": (int,), "correct": (bool,), "parse_ok": (bool,), "schema_valid": (bool,),
    "cached": (bool,), "lenient": (bool,), "attempts": (int,), "latency_ms": (int, float),
    "prompt_tokens": (int,), "completion_tokens": (int,), "cached_tokens": (int,),
    "error_kind": (str,), "error": (str,), "output": (str,), "format_version": (int,),
    "replica": (str,), "batch_id": (str,), "shots": (list, tuple),
    "vote_share": (int, float), "sample_correct": (list, tuple),
    "confidence": (int, float), "logprobs": (list, tuple),
}


@dataclass(frozen=True)
class Record:
    """One answered (or failed) example of one arm."""

    arm: str
    strategy: str
    type: str
    model: str
    model_id: str  # the model that finally answered
    k: int
    draw: int
    example_id: str
    input: str
    expected: Any
    prediction: Any
    correct: bool
    parse_ok: bool
    schema_valid: bool
    error_kind: str | None
    error: str | None
    output: str  # the model's full text (version 1 folders: at most 2,000 characters)
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    latency_ms: float
    attempts: int
    cached: bool
    prompt_sha256: str
    calls: tuple[dict[str, Any], ...] = ()  # every call of a multi-call strategy, in order
    lenient: bool = False  # parsed only after a documented leniency (one Markdown code fence)
    replica: str | None = None  # the base URL that answered, when the model has several
    batch_id: str | None = None  # the Batch API batch that answered (run.mode: batch)
    shots: tuple[str, ...] | None = None  # ids of the examples shown, when chosen per input
    # self-consistency (`samples: n`): the share of samples agreeing with the voted answer, and
    # each sample's own correctness; None for a single answer
    vote_share: float | None = None
    sample_correct: tuple[bool, ...] | None = None
    # `confidence: logprob`: the answer's probability (tasks.confidence) and the output tokens'
    # (token, log-probability) it is computed from (kept so that re-scoring can recompute it)
    confidence: float | None = None
    logprobs: tuple[tuple[str, float], ...] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def key(self) -> tuple[str, str]:
        """Identity: (arm key, example id)."""
        return self.arm, self.example_id

    @property
    def request_failed(self) -> bool:
        """The request or provider failed: no answer of the model to score."""
        return is_request_error(self.error_kind)

    @property
    def endpoint_failed(self) -> bool:
        """The endpoint failed (not the model): the example is unanswered, not wrong."""
        return is_endpoint_failure(self.error_kind)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (one line of results.jsonl); `calls` only when there were several,
        `lenient` only when true, `replica`, `batch_id`, `shots`, `vote_share` and
        `sample_correct` only when set."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.calls:
            out["calls"] = list(self.calls)
        else:
            del out["calls"]
        if not self.lenient:
            del out["lenient"]
        for name in ("replica", "batch_id", "shots", "vote_share", "sample_correct",
                     "confidence", "logprobs"):
            if out[name] is None:
                del out[name]
            elif isinstance(out[name], tuple):
                out[name] = [list(x) if isinstance(x, tuple) else x for x in out[name]]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Read a record of any format version (missing version: 1; running.migrations)."""
        d = migrate_record(data)
        d["example_id"] = str(d["example_id"])
        d["calls"] = tuple(d.get("calls") or ())
        if d.get("shots") is not None:
            d["shots"] = tuple(str(x) for x in d["shots"])
        if isinstance(d.get("sample_correct"), list):
            d["sample_correct"] = tuple(d["sample_correct"])
        if isinstance(d.get("logprobs"), list):
            d["logprobs"] = tuple((str(t), float(lp)) for t, lp in d["logprobs"])
        d.setdefault("output", "")
        d["output"] = d["output"] or ""
        for name, kinds in _RECORD_TYPES.items():
            if name in d and d[name] is not None and not _is(d[name], kinds):
                wanted = " or ".join(k.__name__ for k in kinds)
                raise ValueError(f"field {name!r} is {d[name]!r}, not {wanted}")
        return _known(cls, d)

    def rescored(self, task: Task) -> Record:
        """The record scored again through `task` from its stored output (no model call).

        Failed requests stay as they are: there is no answer to score.
        """
        if self.request_failed:
            return self
        if self.vote_share is not None and self.calls:  # a vote: every sample again
            comps = [_known(Completion, c) for c in self.calls]
            samples = [(c.content, c.finish_reason, request_failure(c)) for c in comps]
            s, share, correct, output = vote_outputs(task, samples, self.expected)
            return dataclasses.replace(self, prediction=s.prediction, correct=s.correct,
                                       parse_ok=s.parse_ok, schema_valid=s.schema_valid,
                                       error_kind=s.error_kind, error=s.error, lenient=s.lenient,
                                       vote_share=share, sample_correct=correct, output=output)
        s = task.score(self.output, self.finish_reason, self.expected)
        return dataclasses.replace(self, prediction=s.prediction, correct=s.correct,
                                   parse_ok=s.parse_ok, schema_valid=s.schema_valid,
                                   error_kind=s.error_kind, error=s.error, lenient=s.lenient,
                                   confidence=score_confidence(task, s, self.output,
                                                               self.logprobs))


def score_confidence(task: Task, score: Score, output: str,
                     logprobs: tuple[tuple[str, float], ...] | None) -> float | None:
    """The confidence of a scored answer from its tokens' log-probabilities (tasks.confidence),
    None without them or for an answer that does not parse."""
    if logprobs is None or not score.parse_ok:
        return None
    return answer_confidence(output, logprobs, answer_fields(task.output_schema()))


@dataclass(frozen=True)
class ArmMeta:
    """One arm as the run planned it."""

    key: str
    strategy: str
    type: str
    model: str
    model_id: str
    provider: str
    k: int
    draw: int
    prompt_sha256: str
    shots: tuple[str, ...]
    prompt_example: str
    unavailable: str | None = None
    structured_output: str = "json_schema"  # how its answers were constrained (none: not at all)
    selection: str | None = None  # few-shot: how the shots were chosen (similar/tfidf, ...)
    variant: str | None = None  # the prompt variant the arm runs
    samples: int = 1  # self-consistency: samples voted per example
    temperature: float | None = None  # the strategy's temperature; None: run.temperature
    reasoning: bool = False  # answers start with a reasoning string (tasks.ReasoningFirst)
    logprobs: bool = False  # `confidence: logprob`: token log-probabilities were requested


@dataclass(frozen=True)
class DatasetMeta:
    """What the run used of the data files."""

    eval: str
    train: str
    sha256: str
    n_eval: int
    eval_total: int
    train_pool: int
    leaked: int
    limit: int | None
    seed: int


def _model_from(d: Mapping[str, Any]) -> ModelConfig:
    price = d.get("price")
    return _known(ModelConfig, {**d, "price": _known(Price, price) if price else None})


# the registry fields a stored entry may lack (a hand-written or partial one): read as unknown
_FINE_TUNE_BLANKS: dict[str, Any] = {
    "name": "", "model_id": "", "provider": "", "base_model": "", "data_sha256": "",
    "hyperparameters": {}, "trained_tokens": None, "training_cost_usd": None, "created_at": "",
}


def fine_tune_from(entry: FineTune | Mapping[str, Any]) -> FineTune:
    """A run's `fine_tunes` entry as the registry's type: run.json stores the entry's fields
    (dataclasses.asdict); fields it lacks read as unknown (or the registry's defaults)."""
    if isinstance(entry, FineTune):
        return entry
    return _known(FineTune, {**_FINE_TUNE_BLANKS, **entry})


@dataclass(frozen=True)
class RunMeta:
    """Everything reports need besides the records: config, data, arms, settings, status.

    `config` is the run's config, typed (config.recorded), rebuilt from `config_raw` (the
    config as parsed, as run.json stores it) whenever a RunMeta is made; readers use `config`,
    `config_raw` is kept for the resume check (running.resume) and for run.json itself.
    `fine_tunes` holds the registry entry each fine-tuned strategy resolved to (a mapping
    given for one is read as one: `fine_tune_from`).
    """

    name: str
    harness_version: str
    config_path: str
    config_sha256: str
    config_raw: dict[str, Any]  # run.json's config.raw: `config` comes from it; resume reads it
    dataset: DatasetMeta
    task_type: str
    labels: tuple[str, ...]
    output_schema: dict[str, Any]
    arms: tuple[ArmMeta, ...]
    examples: tuple[str, ...]
    models: dict[str, ModelConfig]
    fine_tunes: Mapping[str, FineTune]  # strategy -> the registry entry it evaluated
    run: RunConfig
    decision: DecisionConfig
    gate: GateConfig
    versions: dict[str, str]
    started_at: str
    finished_at: str | None = None
    status: str = "running"
    message: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    # `dataset.cluster`: each eval example's cluster, in `examples` order; () unclustered
    clusters: tuple[str, ...] = ()
    # --allow-missing: the run was accepted without its unavailable arms (a verdict over the rest)
    allow_missing: bool = False
    # the typed config, from config_raw (not an argument: always what config_raw says)
    config: RecordedConfig = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", recorded_config(self.config_raw))
        object.__setattr__(self, "fine_tunes", {s: fine_tune_from(e)
                                                for s, e in self.fine_tunes.items()})

    @property
    def expected_records(self) -> int:
        """Records a complete run holds."""
        return len(self.arms) * len(self.examples)

    def arm(self, key: str) -> ArmMeta:
        """The arm with this key."""
        return next(a for a in self.arms if a.key == key)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of run.json (version 1's layout, plus format_version and task type)."""
        return {
            "format_version": self.format_version,
            "harness_version": self.harness_version,
            "name": self.name,
            "config": {"path": self.config_path, "sha256": self.config_sha256, "raw": self.config_raw},
            "dataset": dataclasses.asdict(self.dataset),
            "task_type": self.task_type,
            "labels": list(self.labels),
            "output_schema": self.output_schema,
            "arms": [{**dataclasses.asdict(a), "shots": list(a.shots)} for a in self.arms],
            "examples": list(self.examples),
            "models": {n: dataclasses.asdict(m) for n, m in self.models.items()},
            "fine_tunes": {s: dataclasses.asdict(e) for s, e in self.fine_tunes.items()},
            "run": dataclasses.asdict(self.run),
            "decision": dataclasses.asdict(self.decision),
            "gate": dataclasses.asdict(self.gate),
            "versions": self.versions,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "message": self.message,
            "counts": self.counts,
            **({"clusters": list(self.clusters)} if self.clusters else {}),
            **({"allow_missing": True} if self.allow_missing else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunMeta:
        """Read run.json of any format version (missing version: 1; running.migrations)."""
        d = migrate_meta(d)
        config = d.get("config") or {}
        ds = d.get("dataset") or {}
        return cls(
            name=str(d["name"]),
            harness_version=str(d.get("harness_version", "")),
            config_path=str(config.get("path", "")),
            config_sha256=str(config.get("sha256", "")),
            config_raw=dict(config.get("raw") or {}),
            dataset=DatasetMeta(
                eval=str(ds.get("eval", "")), train=str(ds.get("train", "")),
                sha256=str(ds.get("sha256", "")), n_eval=int(ds.get("n_eval", 0)),
                eval_total=int(ds.get("eval_total", 0)), train_pool=int(ds.get("train_pool", 0)),
                leaked=int(ds.get("leaked", 0)), limit=ds.get("limit"), seed=int(ds.get("seed", 0)),
            ),
            task_type=str(d.get("task_type", "classification")),
            labels=tuple(d.get("labels") or ()),
            output_schema=dict(d.get("output_schema") or {}),
            arms=tuple(_known(ArmMeta, {**a, "shots": tuple(a.get("shots") or ())})
                       for a in d.get("arms") or ()),
            examples=tuple(str(e) for e in d.get("examples") or ()),
            models={n: _model_from(m) for n, m in (d.get("models") or {}).items()},
            fine_tunes={str(s): fine_tune_from(e) for s, e in (d.get("fine_tunes") or {}).items()},
            run=_run_config(d.get("run") or {}),
            decision=_known(DecisionConfig, d.get("decision") or {}),
            gate=_known(GateConfig, d.get("gate") or {}),
            versions=dict(d.get("versions") or {}),
            started_at=str(d.get("started_at", "")),
            finished_at=d.get("finished_at"),
            status=str(d.get("status", "unknown")),
            message=d.get("message"),
            counts=dict(d.get("counts") or {}),
            format_version=d["format_version"],
            clusters=tuple(str(c) for c in d.get("clusters") or ()),
            allow_missing=bool(d.get("allow_missing", False)),
        )


def endpoint_failure_share(meta: RunMeta, failed_by_arm: Mapping[str, int]) -> tuple[int, int]:
    """(endpoint failures, answers planned) over the arms that were available: the share that
    `run.max_failure_rate` is compared with (the runner's and the verdict's one rule)."""
    skip = {a.key for a in meta.arms if a.unavailable}
    planned = (len(meta.arms) - len(skip)) * len(meta.examples)
    failed = sum(n for arm, n in failed_by_arm.items() if arm not in skip) if planned else 0
    return int(failed), planned
