"""How long does stopping take? The seconds to write a preset's checkpoint, with and without the
optimizer state, to a folder on this machine: the bulk of a shutdown on SIGTERM.

    python -m benchmarks.checkpoint_write --mode full

Schedulers send SIGKILL after a grace period (often 30 s); the write must fit inside it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click

from benchmarks.options import data_option
from gpt.checkpoint import save_checkpoint
from gpt.config import MODES, resolve_config
from gpt.environment import prepare_environment
from gpt.training import TrainingHistory, train_step
from process_setup import prepare_training_process


@click.command()
@click.option("--mode", type=click.Choice(MODES), default="full", show_default=True)
@data_option
@click.option(
    "--folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Where to write."
)
def main(mode: str, data: str, folder: Path | None) -> None:
    prepare_training_process()
    env = prepare_environment(resolve_config(mode, None, {"precision": "fp32"}), data, "cpu")
    inputs, targets = next(iter(env.train_loader))
    train_step(env, inputs, targets, env.config.learning_rate)  # AdamW allocates its state on the first step
    with tempfile.TemporaryDirectory(prefix="gpt-bench-", dir=folder) as scratch:
        for resumable in (True, False):
            started = time.perf_counter()
            path = save_checkpoint(Path(scratch) / "model.pt", env, TrainingHistory(), resumable)
            seconds = time.perf_counter() - started
            what = "with optimizer state (single run)" if resumable else "model only (sweep trial)"
            click.echo(f"{mode} checkpoint, {what}: {path.stat().st_size / 1e9:.2f} GB in {seconds:.1f} s")


if __name__ == "__main__":
    main()
