"""A GPT-2-style model trained from scratch, in plain PyTorch."""

from gpt.config import ModelConfig, TrainingConfig, resolve_config
from gpt.environment import Environment, prepare_environment
from gpt.model import GPTModel
from gpt.training import EvalResult, TrainingCallback, TrainingHistory, train

__all__ = [
    "Environment",
    "EvalResult",
    "GPTModel",
    "ModelConfig",
    "TrainingCallback",
    "TrainingConfig",
    "TrainingHistory",
    "prepare_environment",
    "resolve_config",
    "train",
]
