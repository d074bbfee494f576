"""Config: the JSON Schema (`schema`), the typed frozen config (`types`) and loading (`load`)."""

from harness.config.load import load_config, parse_config, with_overrides
from harness.config.types import (
    LOCAL_MODEL_ALIAS,
    Config,
    DatasetConfig,
    DecisionConfig,
    FinetuneConfig,
    GateConfig,
    ModelConfig,
    Price,
    Prompts,
    RunConfig,
    SequentialConfig,
    StrategyConfig,
    TaskConfig,
    Variant,
    batch_mode,
)

__all__ = [
    "LOCAL_MODEL_ALIAS", "Config", "DatasetConfig", "DecisionConfig", "FinetuneConfig",
    "GateConfig", "ModelConfig", "Price", "Prompts", "RunConfig", "SequentialConfig",
    "StrategyConfig", "TaskConfig", "Variant",
    "batch_mode", "load_config", "parse_config", "with_overrides",
]
