"""Fine-tuning: training data (`data`), an OpenAI job (`openai_job`) or a local LoRA (`lora`),
recorded in the registry (`workflow.finetune`).

Importing this package is cheap (the names below load on first use), so that
`import harness.training.lora` pulls in neither numpy nor the rest of the harness.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["TrainingData", "build_training_data", "ensure_fine_tunes", "finetune", "save_pending",
           "validate_training_data"]

if TYPE_CHECKING:
    from harness.training.data import TrainingData, build_training_data, validate_training_data
    from harness.training.pending import save_pending
    from harness.training.workflow import ensure_fine_tunes, finetune

_HOME = {"TrainingData": "data", "build_training_data": "data", "validate_training_data": "data",
         "save_pending": "pending", "ensure_fine_tunes": "workflow", "finetune": "workflow"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"harness.training.{_HOME[name]}"), name)
    raise AttributeError(f"module 'harness.training' has no attribute {name!r}")
