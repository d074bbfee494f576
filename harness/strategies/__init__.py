"""Strategies: how an arm answers an example (`Strategy.answer(example, generate)`)."""

from harness.strategies.base import (
    Arm,
    Attempt,
    Call,
    Generate,
    Strategy,
    arm_name,
    is_fine_tuned,
    is_prompting,
    is_sweep,
)
from harness.strategies.prompting import (
    STRATEGIES,
    FineTunedCall,
    SingleCall,
    expand,
    rendered_prompt,
)
from harness.strategies.selectors import SELECTORS, hash_seed, select_shots

__all__ = ["SELECTORS", "STRATEGIES", "Arm", "Attempt", "Call", "FineTunedCall", "Generate",
           "SingleCall", "Strategy", "arm_name", "expand", "hash_seed", "is_fine_tuned", "is_prompting",
           "is_sweep", "rendered_prompt", "select_shots"]
