"""The two-panel loss plot: evaluated losses against steps, and the raw batch losses.

Drawn on a ``matplotlib.figure.Figure`` without pyplot, so importing this changes no global
backend and a plot can be drawn off the main thread.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gpt.atomic import atomic_path
from gpt.training import TrainingHistory

MAX_BATCH_POINTS = 500
LOG_SCALE_RATIO = 5


def _log_scale_if_wide(ax: Axes, values: list[float]) -> None:
    """Losses fall from ~11 to below 1: on a log axis the late, small gains stay visible."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_SCALE_RATIO:
        ax.set_yscale("log")


def _legend_below(ax: Axes) -> None:
    """Under the axes, where it can never hide a point."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, frameon=False, fontsize="small")


def plot_losses(history: TrainingHistory, path: str | Path = "training_losses.png", title: str | None = None) -> Path:
    """Left: train and val loss by step, tokens seen on the top axis. Right: batch loss, subsampled."""
    fig = Figure(figsize=(12, 4.8), layout="tight")
    evals_ax, batch_ax = fig.subplots(1, 2)
    steps = [e.step for e in history.evals]
    train_losses, val_losses = [e.train_loss for e in history.evals], [e.val_loss for e in history.evals]
    evals_ax.plot(steps, train_losses, marker="o", label="Training loss")
    evals_ax.plot(steps, val_losses, marker="o", linestyle="-.", label="Validation loss")
    best = history.best_eval
    if best is not None:
        evals_ax.scatter(
            [best.step],
            [best.val_loss],
            s=120,
            facecolors="none",
            edgecolors="red",
            zorder=3,
            label=f"Best val {best.val_loss:.3f} (step {best.step})",
        )
    evals_ax.set_title("Evaluated loss")
    evals_ax.set_xlabel("Step")
    evals_ax.set_ylabel("Cross-entropy loss")
    _log_scale_if_wide(evals_ax, train_losses + val_losses)
    evals_ax.grid(alpha=0.3)
    _legend_below(evals_ax)
    if history.evals:
        tokens_ax = evals_ax.twiny()
        tokens_ax.plot([e.tokens_seen for e in history.evals], val_losses, alpha=0)
        tokens_ax.set_xlabel("Tokens seen")

    every = max(1, len(history.batch_losses) // MAX_BATCH_POINTS)
    shown = history.batch_losses[::every]
    batch_ax.plot([s for s, _ in shown], [loss for _, loss in shown], linewidth=0.8, label="Batch loss")
    batch_ax.set_xlabel("Step")
    batch_ax.set_ylabel("Cross-entropy loss")
    batch_ax.set_title("Training batch loss" + (f" (every {every}th step)" if every > 1 else ""))
    _log_scale_if_wide(batch_ax, [loss for _, loss in shown])
    batch_ax.grid(alpha=0.3)
    _legend_below(batch_ax)
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:  # a full disk leaves the last plot whole, never a 0-byte one
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    return path
