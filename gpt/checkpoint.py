"""Checkpoints: everything needed to sample from a model or to resume its training, written atomically.

Resuming gives the losses an uninterrupted run would have had: besides model and
optimizer state, a checkpoint holds the history so far and the random states (dropout,
and the data order of the epoch in progress and of the epochs after it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from gpt.atomic import atomic_path
from gpt.config import TrainingConfig
from gpt.environment import TrainingSetup
from gpt.model import GPTModel
from gpt.training import EvalResult, TrainingHistory


def checkpoint_bytes(env: TrainingSetup, resumable: bool = True) -> int:
    """About how large ``save_checkpoint`` writes the file: fp32 weights, and with ``resumable`` AdamW's two
    moments too (the history and random states are small beside them)."""
    parameters = sum(p.numel() for p in env.model.parameters())
    return parameters * 4 * (3 if resumable else 1)


def save_checkpoint(path: str | Path, env: TrainingSetup, history: TrainingHistory, resumable: bool = True) -> Path:
    """Write the checkpoint atomically; without ``resumable`` it leaves out the optimizer state
    (two thirds of the file with AdamW), enough to sample from but not to resume.
    """
    state = {
        "model_state_dict": env.model.state_dict(),
        "config": env.config.to_dict(),
        "step": history.step,
        "history": {
            "evals": [dataclasses.asdict(e) for e in history.evals],
            "batch_losses": history.batch_losses,
            "samples": history.samples,
            "tokens_seen": history.tokens_seen,
            "loader_state_at_epoch_start": history.loader_state_at_epoch_start,
        },
        "rng": {"torch": torch.get_rng_state(), "loader": env.train_loader.generator.get_state()},
    }
    if resumable:
        state["optimizer_state_dict"] = env.optimizer.state_dict()
    if env.device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state(env.device)
    # torch.save is given an open file, so that a failed write (a full disk) closes it here: torch's own
    # writer, kept alive by the exception's traceback, would hold the unlinked file's space until collected.
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        torch.save(state, file)
    return Path(path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def restore_model(checkpoint: dict[str, Any]) -> tuple[GPTModel, TrainingConfig]:
    """Rebuild the trained model (in eval mode) and its config from a loaded checkpoint."""
    config = TrainingConfig.from_dict(checkpoint["config"])
    model = GPTModel(config.model)
    model.load_state_dict(checkpoint["model_state_dict"])
    return model.eval(), config


def restore_training(env: TrainingSetup, checkpoint: dict[str, Any]) -> TrainingHistory:
    """Put ``env`` back where the checkpoint left off; ``train(env, history=...)`` then continues."""
    env.model.load_state_dict(checkpoint["model_state_dict"])
    env.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    saved = checkpoint["history"]
    history = TrainingHistory(
        step=checkpoint["step"],
        tokens_seen=saved["tokens_seen"],
        evals=[EvalResult(**e) for e in saved["evals"]],
        batch_losses=[tuple(pair) for pair in saved["batch_losses"]],
        samples=[tuple(pair) for pair in saved["samples"]],
        loader_state_at_epoch_start=saved["loader_state_at_epoch_start"],
    )
    rng = checkpoint["rng"]
    torch.set_rng_state(rng["torch"].cpu())
    env.train_loader.generator.set_state(rng["loader"].cpu())
    if "cuda" in rng and env.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"].cpu(), env.device)
    if env.group is not None and not env.group.is_main:
        # Only rank 0's random state is saved; the others draw their own dropout masks from here on.
        torch.manual_seed(env.config.seed + env.group.rank + history.step + 1)
    return history
