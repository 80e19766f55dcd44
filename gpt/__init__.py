"""A GPT-2-style model trained from scratch, in plain PyTorch.

The names below load on first use, so importing ``gpt`` (and ``runner.py --help``)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "TrainingSetup": "gpt.environment",
    "prepare_environment": "gpt.environment",
    "EvalResult": "gpt.training",
    "TrainingCallback": "gpt.training",
    "TrainingHistory": "gpt.training",
    "train": "gpt.training",
    "GPTModel": "gpt.model",
    "ModelConfig": "gpt.config",
    "TrainingConfig": "gpt.config",
    "resolve_config": "gpt.config",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'gpt' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
