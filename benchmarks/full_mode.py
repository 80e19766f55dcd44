"""Does a preset still reach the reference losses in a given precision? Training only, no tracking.

    python -m benchmarks.full_mode --mode full --precision bf16 --data ../shared/data/the-verdict.txt

The reference for ``full`` (GPT-2 124M, ten epochs over The Verdict): final training
loss below 1 and validation loss below 7. Runs where MLflow is not installed (a GPU box).
"""

from __future__ import annotations

import time

import click

from benchmarks.options import data_option
from gpt.config import DEVICES, MODES, PRECISIONS, resolve_config
from gpt.environment import prepare_environment
from gpt.training import train
from process_setup import prepare_training_process


@click.command()
@click.option("--mode", type=click.Choice(MODES), default="full", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@data_option
def main(mode: str, precision: str, device: str, data: str) -> None:
    prepare_training_process()
    config = resolve_config(mode, None, {"precision": precision})
    started = time.perf_counter()
    env = prepare_environment(config, data, device)
    history = train(env, progress_bar=False)
    last, best = history.evals[-1], history.best_eval
    print(
        f"{mode} on {env.device} in {env.precision}: {time.perf_counter() - started:.1f} s, "
        f"{history.step + 1} steps, final train loss {last.train_loss:.3f}, final val loss {last.val_loss:.3f}, "
        f"best val loss {best.val_loss:.3f} at step {best.step}, last tokens/s {last.tokens_per_sec:.0f}"
    )
    print(f"within the reference (train < 1, val < 7): {last.train_loss < 1 and last.val_loss < 7}")


if __name__ == "__main__":
    main()
