"""Checkpoints: model and optimizer state with the configs that built them, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt.atomic import atomic_path
from gpt.config import TrainingConfig
from gpt.model import GPTModel


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainingConfig, step: int
) -> Path:
    with atomic_path(path) as tmp:
        torch.save(
            {
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(),
                "config": config.to_dict(),
                "step": step,
            },
            tmp,
        )
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def restore_model(checkpoint: dict[str, Any]) -> tuple[GPTModel, TrainingConfig]:
    """Rebuild the trained model (in eval mode) and its config from a loaded checkpoint."""
    config = TrainingConfig.from_dict(checkpoint["config"])
    model = GPTModel(config.model)
    model.load_state_dict(checkpoint["model_state_dict"])
    return model.eval(), config
