"""What should the pruner read? How well each signal at each report point ranks trials the way the sweep's
objective (``final_val_loss``, the whole validation span) does at the end. Measured on WikiText-2: train on
test.txt, validate on valid.txt.

    python -m benchmarks.pruning_signal --trials 16 --tokens 60000

Trains ``--trials`` configurations drawn at random from the default space (one seed each, no pruning),
each for ``--tokens`` training tokens with a report at every tenth of training, as a sweep's trial. At
each report it reads the loss on validation subsets of several sizes (the sweep's fixed blocks, as a trial
reads its 256) and the training loss since the last report (free: the batches already computed). At the
end, ``final_val_loss`` (65,536 tokens spread over the validation file) is the truth. Printed, for each
signal and report point: the Spearman correlation of the signal with the truth across trials, and how
many of the final best three a pruner that keeps the better third by that signal would have kept; then
the time an evaluation of each subset size costs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import click
import optuna

from gpt.environment import TrainingSetup, load_tokens, prepare_environment
from gpt.evaluation import ValidationSpan, block_length, windows_of
from gpt.training import EvalResult, TrainingCallback, train, validation_loss
from process_setup import prepare_sweep_process
from sweeps.sampling import REPORT_POINTS
from sweeps.space import DEFAULT_SPACE, SearchSpace

WIKITEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2"
SUBSETS = (256, 1024, 4096)
TRAIN_SIGNAL = "train loss since last report"
KEPT_FRACTION = 1 / 3  # hyperband's reduction factor 3 keeps the better third at a rung


class SignalRecorder(TrainingCallback):
    """At each report point: the loss on each validation subset, and the training loss since the last one."""

    def __init__(self, env: TrainingSetup, longest_context: int) -> None:
        self.env = env
        span = ValidationSpan.of(env.tokens.val_ids, max(SUBSETS), block_length(longest_context))
        self.windows = {n: windows_of(span.subset(n), env.config.max_length) for n in SUBSETS}
        self.values: dict[str, dict[int, float]] = {name: {} for name in signal_names()}
        self.seconds: dict[int, list[float]] = {n: [] for n in SUBSETS}

    def on_eval(self, result: EvalResult) -> None:
        point = min(int(result.progress * REPORT_POINTS), REPORT_POINTS)
        self.values[TRAIN_SIGNAL][point] = result.train_loss
        self.env.model.eval()
        for tokens, windows in self.windows.items():
            started = time.perf_counter()
            self.values[subset_name(tokens)][point] = validation_loss(self.env, windows)
            self.seconds[tokens].append(time.perf_counter() - started)
        self.env.model.train()


def subset_name(tokens: int) -> str:
    return f"val loss, {tokens:,} tokens"


def signal_names() -> list[str]:
    return [subset_name(n) for n in SUBSETS] + [TRAIN_SIGNAL]


def ranks(values: list[float]) -> list[float]:
    """Each value's rank (0 = lowest); ties share their mean rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2
        i = j + 1
    return result


def spearman(a: list[float], b: list[float]) -> float:
    return statistics.correlation(ranks(a), ranks(b))


def best_kept(signal: list[float], truth: list[float], best: int = 3) -> int:
    """How many of the ``best`` trials by ``truth`` are in the better third by ``signal``."""
    kept = max(1, round(len(signal) * KEPT_FRACTION))
    by_signal = set(sorted(range(len(signal)), key=signal.__getitem__)[:kept])
    return len(by_signal & set(sorted(range(len(truth)), key=truth.__getitem__)[:best]))


@click.command()
@click.option("--trials", type=click.IntRange(min=4), default=16, show_default=True)
@click.option("--tokens", type=click.IntRange(min=1), default=60000, show_default=True, help="Training tokens a trial.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random draws from the space.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(trials: int, tokens: int, seed: int, data: str, val_data: str) -> None:
    prepare_sweep_process()
    space = SearchSpace.load(DEFAULT_SPACE)
    text = load_tokens(data, val_data=val_data)
    longest = max(space.values_of("max_length"))
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    signals: dict[str, dict[int, list[float]]] = {name: {} for name in signal_names()}
    truth, eval_seconds = [], {n: [] for n in SUBSETS}
    for number in range(trials):
        sampled = space.sample(draws.ask())
        config = space.trial_base().update(**sampled, max_tokens=tokens, precision="fp32", seed=number + 1)
        config = config.update(eval_freq=max(1, config.training_steps(0) // REPORT_POINTS))
        env = prepare_environment(config, device="cpu", tokenizer=text.tokenizer, tokens=text.tokens)
        recorder = SignalRecorder(env, longest)
        started = time.perf_counter()
        truth.append(train(env, [recorder], log_every=1000, progress_bar=False).final_val_loss)
        for name, by_point in recorder.values.items():
            for point, value in by_point.items():
                signals[name].setdefault(point, []).append(value)
        for n in SUBSETS:
            eval_seconds[n].extend(recorder.seconds[n])
        click.echo(f"trial {number}: {sampled}: final_val_loss {truth[-1]:.4f} ({time.perf_counter() - started:.1f}s)")
    points = sorted(p for p in signals[TRAIN_SIGNAL] if len(signals[TRAIN_SIGNAL][p]) == trials)
    click.echo(
        f"\nSpearman correlation with final_val_loss, {trials} trials of "
        f"{tokens:,} tokens (in brackets: of the 3 best at the end, how many the better third by the signal keeps)"
    )
    click.echo(f"{'signal':<30}" + "".join(f"{f'{p}/{REPORT_POINTS}':>11}" for p in points))
    for name in signal_names():
        cells = [f"{spearman(signals[name][p], truth):.2f} ({best_kept(signals[name][p], truth)})" for p in points]
        click.echo(f"{name:<30}" + "".join(f"{cell:>11}" for cell in cells))
    click.echo("\nseconds an evaluation takes: " + ", ".join(
        f"{n:,} tokens {statistics.fmean(eval_seconds[n]):.3f}" for n in SUBSETS
    ))  # fmt: skip


if __name__ == "__main__":
    main()
