"""The typed config: frozen dataclasses built by `load.py` and read everywhere else."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.config.cascade import CascadeConfig
from harness.errors import InputError
from harness.kinds import STRATIFIED

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
    """USD per 1M tokens; training_per_m is None where the model cannot be fine-tuned.

    The one price type: the config's `price:` block, the built-in table and every cost sum.
    """

    input_per_m: float
    cached_input_per_m: float
    output_per_m: float
    training_per_m: float | None = None
    batch_share: float = 0.5  # of the rates above, paid for a Batch API request (OpenAI: half)


@dataclass(frozen=True)
class TaskConfig:
    type: str  # one of harness.kinds.TASK_KINDS
    instructions: str
    labels: tuple[str, ...] | None
    output_schema: dict[str, Any] | None
    prompts: Prompts
    match: dict[str, str] = field(default_factory=dict)  # extraction: field -> comparison rule


@dataclass(frozen=True)
class DatasetConfig:
    eval: Path
    train: Path | None
    input: str
    target: str
    id: str | None
    limit: int | None
    seed: int
    target_fields: dict[str, str] | None = None  # extraction: answer field -> CSV column
    # the field naming each eval example's group of related examples (analysis/clustered.py);
    # None: the examples are independent
    cluster: str | None = None


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
    # every replica when `base_url` is a list (the first is `base_url`); () for one URL
    base_urls: tuple[str, ...] = ()
    # provider local: server processes started, sharing the CPU cores (None: one per core, at
    # most 4, which measured fastest on 2 cores: see benchmarks/bench_local.py)
    servers: int | None = None
    mode: str | None = None  # online | batch; None: run.mode
    # config `price.fine_tuned`: inference on this model's fine-tuned ids (ft:..., local-ft:...).
    # None: the built-in fine-tuned rate of the base, else unknown; never `price` (the base rate)
    fine_tuned_price: Price | None = None
    hosting_per_month: float | None = None  # `price.hosting_per_month`: fixed USD a month

    def __post_init__(self) -> None:
        # run.json stores tuples as lists and the price as a mapping: read them back as such
        object.__setattr__(self, "base_urls", tuple(self.base_urls))
        ft: Any = self.fine_tuned_price
        if isinstance(ft, dict):
            names = {f.name for f in fields(Price)}
            object.__setattr__(self, "fine_tuned_price",
                               Price(**{k: v for k, v in ft.items() if k in names}))


@dataclass(frozen=True)
class Variant:
    """One prompt variant of a strategy (`variants: {NAME: {system, user}}`): its own arm,
    named `STRATEGY:NAME`, with these templates over the strategy's."""

    name: str
    prompts: Prompts
    reasoning: bool = False  # the answer starts with a `reasoning` string (tasks.reasoning)


@dataclass(frozen=True)
class StrategyConfig:
    name: str
    type: str  # one of harness.kinds.STRATEGY_KINDS (not cascade: see CascadeConfig)
    model: str
    shots: tuple[int, ...] = ()
    selection: str = STRATIFIED  # one of harness.kinds.SELECTIONS
    similarity: str = "tfidf"  # selection similar: tfidf | embedding
    draws: int = 1
    fine_tuned_model: str | None = None
    train_if_missing: bool = False
    training_cost_usd: float | None = None  # what training cost (0: already paid); None: unknown
    prompts: Prompts = field(default_factory=Prompts)
    structured_output: str | None = None  # overrides the model's: json_schema | json_object | none
    samples: int = 1  # self-consistency: answers per example, majority-voted through the task
    temperature: float | None = None  # overrides run.temperature for this strategy's requests
    variants: tuple[Variant, ...] = ()  # prompt variants: one arm each (see Variant)
    variant: str | None = None  # set on the strategy a variant expands into: its name
    reasoning: bool = False  # set from its variant: reasoning before the answer
    confidence: str | None = None  # agreement: each answer's vote share is its confidence


@dataclass(frozen=True)
class SequentialConfig:
    """`run.sequential`: request the examples in a seeded random order, in rounds of
    `look_every` per arm; after each round (from `min_examples` on) stop an arm, or the run,
    whose part in the decision is settled (analysis/sequential.py); `max_examples` caps the
    examples per arm (None: the whole eval)."""

    enabled: bool = False
    look_every: int = 50
    min_examples: int = 50
    max_examples: int | None = None
    seed: int = 0  # the order the examples are requested in


@dataclass(frozen=True)
class RunConfig:
    concurrency: int = 8
    temperature: float = 0.0
    max_tokens: int = 64
    seed: int | None = None  # sent only when set
    timeout: float = 60.0
    max_attempts: int = 6
    max_wait: float = 300.0
    max_retry_after: float = 600.0
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_failure_rate: float = 0.01  # endpoint failures above this share: the run is incomplete
    cache_ttl: float | None = None  # seconds a cached answer is served; None: no expiry
    mode: str = "online"  # online | batch (the OpenAI Batch API); models.NAME.mode overrides
    batch_poll_seconds: float = 30.0  # batch mode: seconds between status polls
    # a hard spend cap (USD) for one invocation: the run stops before a request that could pass it
    max_cost_usd: float | None = None
    sequential: SequentialConfig = SequentialConfig()


def batch_mode(model: ModelConfig, run: RunConfig) -> bool:
    """True when `model` goes through the Batch API: its own `mode`, else `run.mode`."""
    return (model.mode or run.mode) == "batch"


@dataclass(frozen=True)
class DecisionConfig:
    min_gain: float = 0.02
    alpha: float = 0.05
    equivalence_margin: float = 0.02
    monthly_volume: float | None = None
    horizon_months: float = 3.0
    history_window: int = 3
    bootstrap: int = 2000
    min_compliance: float = 0.5  # a decisive arm below this schema compliance: no verdict
    metric: str = "accuracy"  # what the plateau, comparisons and verdict use: accuracy | field_f1
    min_schema_compliance: float | None = None  # an arm below this cannot be recommended
    # one-off engineering cost of what is more than a prompt (a fine-tune, a cascade)
    engineering_hours: float | None = None
    hourly_rate: float | None = None  # USD per engineering hour
    # a cascade's operating point (analysis/cascade.py Rule): an accuracy floor, a cost cap
    cascade_min_accuracy: float | None = None
    cascade_max_cost_per_1k: float | None = None


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
    max_cost_usd: float | None = None  # a fine-tuning estimate above this is refused


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
    cascades: tuple[CascadeConfig, ...] = ()  # type cascade: computed from recorded arms

    def strategy(self, name: str) -> StrategyConfig:
        """The strategy called `name`."""
        for s in self.strategies:
            if s.name == name:
                return s
        raise InputError(f"{self.path}: no strategy named {name!r}")
