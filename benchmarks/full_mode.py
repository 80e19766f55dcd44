"""Does a preset still reach the reference losses in a given precision? Training only, no tracking.

    python -m benchmarks.full_mode --mode full --precision bf16 --data ../shared/data/the-verdict.txt
    python -m benchmarks.full_mode --mode full --set parametrization=standard --set learning_rate=4e-4

The reference for ``full`` (GPT-2 124M under mup, ten epochs over The Verdict): a final validation loss
at most the book's 6.37 (it ended at 5.89 in fp32 on a CPU; README, the full preset). Runs where MLflow is
not installed (a GPU box).
"""

from __future__ import annotations

import time

import click
import yaml

from benchmarks.options import data_option
from gpt.config import DEVICES, MODES, PRECISIONS, resolve_config
from gpt.environment import prepare_environment
from gpt.errors import ConfigError
from gpt.training import ConsoleReporter, train
from process_setup import prepare_training_process

BOOK_VAL_LOSS = 6.37  # the book's run ended at train loss 0.57, val loss 6.37


@click.command()
@click.option("--mode", type=click.Choice(MODES), default="full", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A setting over the preset's, e.g. learning_rate=1e-3.",
)
@click.option("--curve", is_flag=True, help="Print every evaluation's losses, not only the last.")
@data_option
def main(mode: str, precision: str, device: str, settings: tuple[str, ...], curve: bool, data: str) -> None:
    prepare_training_process()
    overrides = {key: yaml.safe_load(value) for key, _, value in (s.partition("=") for s in settings)}
    try:
        config = resolve_config(mode, None, {"precision": precision, **overrides})
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from None
    started = time.perf_counter()
    env = prepare_environment(config, data, device)
    history = train(env, callbacks=[ConsoleReporter()] if curve else (), progress_bar=False)
    last, best = history.evals[-1], history.best_eval
    print(
        f"{mode} on {env.device} in {env.precision}: {time.perf_counter() - started:.1f} s, "
        f"{history.step + 1} steps, final train loss {last.train_loss:.3f}, final val loss {last.val_loss:.3f}, "
        f"best val loss {best.val_loss:.3f} at step {best.step}, last tokens/s {last.tokens_per_sec:.0f}"
    )
    print(f"within the reference (val <= {BOOK_VAL_LOSS}, the book's): {last.val_loss <= BOOK_VAL_LOSS}")


if __name__ == "__main__":
    main()
