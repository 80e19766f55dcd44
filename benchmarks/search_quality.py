"""Does a sweep rank models or noise? Measured on WikiText-2: train on test.txt, validate on valid.txt.

    python -m benchmarks.search_quality --trials 6 --seeds 3 --confirm-seeds 1

1. One fixed configuration (the default space's middle) trained with ``--seeds`` seeds. For each
   run: the objective as sweeps scored it before (the best of the evaluations of the first two
   validation batches at its own context), ``final_val_loss`` on validation spans of several sizes,
   and the loss on the whole validation file. Printed: each score's seed-to-seed spread (max - min)
   and its mean gap to the whole file.
2. The default space's sweep, ``--trials`` trials with 2 configurations confirmed on ``--confirm-seeds`` more seeds,
   for TPE + median pruning, TPE + hyperband and random search without pruning: the confirmed best
   mean, its seed spread, the number pruned and the wall time.

Every trial has the quick base with ``max_tokens`` of training (``--tokens``); all of it is measured
in this run, on fresh stores in a temp folder.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import click
import torch

from gpt.config import resolve_config
from gpt.data import SlidingWindowDataset
from gpt.environment import TrainingSetup, load_tokens, prepare_environment
from gpt.evaluation import ValidationSpan, windows_of
from gpt.training import EvalResult, TrainingCallback, batch_loss, train, validation_loss
from process_setup import prepare_sweep_process, prepare_sweep_worker
from sweeps.ranking import best_result
from sweeps.sampling import REPORT_POINTS
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE
from sweeps.sweep import run_sweep

WIKITEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2"
FIXED = {"learning_rate": 2e-3, "drop_rate": 0.1, "n_heads": 4, "n_layers": 2, "max_length": 64}
SPANS = (16384, 32768, 65536)  # 65,536: the default final_eval_tokens
STRATEGIES = (("tpe", "median"), ("tpe", "hyperband"), ("random", "none"))
OLD_EVAL_BATCHES = 2  # what the quick preset's eval_iter was: 2 batches of the validation windows


class OldObjective(TrainingCallback):
    """The score sweeps used before: each evaluation's mean loss over the first two validation batches
    of the run's own windows (context ``max_length``, batch ``batch_size``), the best of them kept."""

    def __init__(self, env: TrainingSetup) -> None:
        self.env, self.best = env, float("inf")
        windows = SlidingWindowDataset(env.tokens.val_ids, env.config.max_length, env.config.max_length)
        size = env.config.batch_size
        self.batches = [windows.__getitems__(list(range(i * size, (i + 1) * size))) for i in range(OLD_EVAL_BATCHES)]

    @torch.no_grad()
    def on_eval(self, result: EvalResult) -> None:
        self.env.model.eval()
        losses = [batch_loss(self.env, inputs, targets).item() for inputs, targets in self.batches]
        self.env.model.train()
        self.best = min(self.best, sum(losses) / len(losses))


def whole_file_loss(env: TrainingSetup, tokens: int | None = None) -> float:
    span = ValidationSpan.of(env.tokens.val_ids, tokens or len(env.tokens.val_ids))
    env.model.eval()
    return validation_loss(env, windows_of(span, env.config.max_length))


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def seed_spread(base, data: str, val_data: str, seeds: int) -> None:
    loaded = load_tokens(data, val_data=val_data)
    rows: dict[str, list[float]] = {"before: best of 2 batches": []}
    rows.update({f"final_val_loss, {n // 1024}k tokens": [] for n in SPANS})
    whole, seconds = [], []
    for seed in range(1, seeds + 1):
        config = base.update(**FIXED, seed=seed)
        config = config.update(eval_freq=max(1, config.training_steps(0) // REPORT_POINTS))  # as a trial's
        env = prepare_environment(config, device="cpu", tokenizer=loaded[1], tokens=loaded[0])
        old = OldObjective(env)
        started = time.perf_counter()
        history = train(env, [old], log_every=100, progress_bar=False)
        seconds.append((time.perf_counter() - started, history.eval_seconds))
        rows["before: best of 2 batches"].append(old.best)
        for n in SPANS:
            rows[f"final_val_loss, {n // 1024}k tokens"].append(whole_file_loss(env, n))
        whole.append(whole_file_loss(env))
        click.echo(f"seed {seed}: whole validation file {whole[-1]:.4f} ({len(env.tokens.val_ids):,} tokens)")
    truth = statistics.fmean(whole)
    click.echo(f"\nOne configuration ({FIXED}), {seeds} seeds, {base.max_tokens:,} training tokens each")
    click.echo(f"{'score':<30} {'mean':>7} {'spread':>7} {'gap to whole file':>18}")
    for name, values in rows.items():
        gap = statistics.fmean(v - w for v, w in zip(values, whole, strict=True))
        click.echo(f"{name:<30} {statistics.fmean(values):>7.4f} {spread(values):>7.4f} {gap:>+18.4f}")
    click.echo(f"{'whole validation file':<30} {truth:>7.4f} {spread(whole):>7.4f} {0:>+18.4f}")
    train_s = statistics.fmean(t for t, _ in seconds)
    eval_s = statistics.fmean(e for _, e in seconds)
    click.echo(f"training loop {train_s:.1f} s a run, of it evaluation (default spans) {eval_s:.1f} s")


def strategies(folder: str, data: str, val_data: str, trials: int, tokens: int, confirm_seeds: int) -> None:
    space_file = Path(folder) / "quality.yaml"
    text = DEFAULT_SPACE.read_text().replace("    num_epochs: 3\n", f"    max_tokens: {tokens}\n")
    space_file.write_text(text)
    base = SweepSettings.in_folder(
        folder, space_file, trials, experiment="search-quality", data=data, val_data=val_data, device="cpu",
        log_every=20, confirm=2, confirm_seeds=confirm_seeds, keep_checkpoints=0,
    )  # fmt: skip
    results = []
    for sampler, pruner in STRATEGIES:
        settings = replace(base, sampler=sampler, pruner=pruner, study_name=f"quality-{sampler}-{pruner}")
        started = time.perf_counter()
        result = run_sweep(settings, worker_setup=prepare_sweep_worker)
        wall = time.perf_counter() - started
        best = best_result(result.study)
        pruned = sum(t.state.name == "PRUNED" for t in result.study.get_trials())
        results.append((f"{sampler} + {pruner}", best, pruned, wall))
    click.echo(
        f"\nThe default space, {trials} trials of {tokens:,} training tokens, "
        f"the 2 best confirmed on {confirm_seeds} more seed(s)"
    )
    click.echo(f"{'strategy':<18} {'confirmed best':>14} {'± std':>7} {'trial':>5} {'pruned':>6} {'wall s':>7}")
    for name, best, pruned, wall in results:
        click.echo(f"{name:<18} {best.mean:>14.4f} {best.std:>7.4f} {best.trial.number:>5} {pruned:>6} {wall:>7.1f}")


@click.command()
@click.option("--trials", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--confirm-seeds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seeds", type=click.IntRange(min=2), default=3, show_default=True)
@click.option("--tokens", type=click.IntRange(min=1), default=32768, show_default=True, help="Training tokens a run.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
@click.option("--skip-sweeps", is_flag=True, help="Only the fixed configuration's seeds.")
def main(trials: int, confirm_seeds: int, seeds: int, tokens: int, data: str, val_data: str, skip_sweeps: bool) -> None:
    prepare_sweep_process()
    base = resolve_config("quick", None, {"max_tokens": tokens, "precision": "fp32"})
    seed_spread(base, data, val_data, seeds)
    if not skip_sweeps:
        with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
            strategies(folder, data, val_data, trials, tokens, confirm_seeds)


if __name__ == "__main__":
    main()
