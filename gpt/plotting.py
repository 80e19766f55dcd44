"""The two-panel loss plot: evaluated losses against steps, and the raw batch losses."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gpt.training import TrainingHistory

MAX_BATCH_POINTS = 500


def plot_losses(history: TrainingHistory, path: str | Path = "training_losses.png") -> Path:
    """Left: train and val loss by step, tokens seen on the top axis. Right: batch loss, subsampled."""
    fig, (evals_ax, batch_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = [e.step for e in history.evals]
    evals_ax.plot(steps, [e.train_loss for e in history.evals], marker="o", label="Training loss")
    evals_ax.plot(steps, [e.val_loss for e in history.evals], marker="o", linestyle="-.", label="Validation loss")
    evals_ax.set_xlabel("Step")
    evals_ax.set_ylabel("Loss")
    evals_ax.legend(loc="upper right")
    if history.evals:
        tokens_ax = evals_ax.twiny()
        tokens_ax.plot([e.tokens_seen for e in history.evals], [e.val_loss for e in history.evals], alpha=0)
        tokens_ax.set_xlabel("Tokens seen")

    every = max(1, len(history.batch_losses) // MAX_BATCH_POINTS)
    shown = history.batch_losses[::every]
    batch_ax.plot([s for s, _ in shown], [loss for _, loss in shown], linewidth=0.8)
    batch_ax.set_xlabel("Step")
    batch_ax.set_ylabel("Batch loss")
    batch_ax.set_title("Batch loss" + (f" (every {every}th step)" if every > 1 else ""))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
