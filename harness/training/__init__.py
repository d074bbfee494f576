"""Fine-tuning: training data (`data`), an OpenAI job (`openai_job`) or a local LoRA (`lora`),
recorded in the registry (`workflow.finetune`)."""

from harness.training.data import TrainingData, build_training_data, validate_training_data
from harness.training.pending import save_pending
from harness.training.workflow import ensure_fine_tunes, finetune

__all__ = ["TrainingData", "build_training_data", "ensure_fine_tunes", "finetune", "save_pending",
           "validate_training_data"]
