"""Where does a warm-started study's first trial land, and how does the learning-rate range move it?

    python -m benchmarks.first_draws --seed 4 --draws 300 --folder warm-seed4

``benchmarks.warm_start`` found that a warm start on a shifted learning-rate range trails a continuation of
the earlier study, and that the widened top of the range makes the gap rather than the narrowed bottom. This
looks at the sampler alone, with nothing trained: the earlier study of ``benchmarks.warm_start`` (the same
``--earlier``, ``--tokens`` and ``--seed``; kept in ``--folder`` and reused when the command runs again), then
for each learning-rate range (the earlier one, the narrowed, widened and shifted ones of ``--shift``) a new
study warm-started from it, whose first trial is drawn ``--draws`` times, each with a sampler seed of its own
(the trial numbers that follow), without training it. Printed per range: the spread of the drawn learning
rates, and how many draws land beside the earlier best (a learning rate within a factor of 2 of its, and
its context length), where the continuation went on to beat it. ``--sampler`` draws them with another sampler
than the space file's.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import click
import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks.warm_start import WIKITEXT, best_trial, earlier_settings, earlier_space, with_lr_range
from gpt.data import TokenizedText
from gpt.environment import load_tokens
from process_setup import prepare_sweep_process, prepare_sweep_worker
from sweeps import SAMPLERS
from sweeps.space import SearchSpace
from sweeps.study import open_study
from sweeps.sweep import run_sweep
from sweeps.warm_start import warm_start

BESIDE = 2.0  # a drawn learning rate within this factor of the earlier best's is beside it


def first_draws(earlier: optuna.Study, space: SearchSpace, tokens: TokenizedText, draws: int) -> list[dict]:
    """``draws`` first trials of a study of ``space`` warm-started from ``earlier``: each drawn as the study's
    next trial and failed untrained, so none informs the next (a failed trial holds no point)."""
    storage = optuna.storages.InMemoryStorage()
    study, _ = open_study(space, "first-draws", storage)
    warm_start(study, space, earlier, tokens)
    study, _ = open_study(space, "first-draws", storage)  # as a worker opens it: with the trials left outside
    points = []
    for _ in range(draws):
        trial = study.ask()
        points.append(space.sample(trial))
        study.tell(trial, state=TrialState.FAIL)
    return points


def where(points: list[dict], best: FrozenTrial) -> str:
    """The drawn learning rates' 10th, 50th and 90th percentiles; the share of draws beside ``best`` and above
    the earlier range."""
    rates = [p["learning_rate"] for p in points]
    tenth, median, ninth = (statistics.quantiles(rates, n=10)[i] for i in (0, 4, 8))
    beside = [
        1 / BESIDE <= p["learning_rate"] / best.params["learning_rate"] <= BESIDE
        and p["max_length"] == best.params["max_length"]
        for p in points
    ]
    above = statistics.mean(rate > 1e-2 for rate in rates)
    return f"{f'{tenth:.2e} / {median:.2e} / {ninth:.2e}':<34}{statistics.mean(beside):>24.2f}{above:>12.2f}"


@click.command()
@click.option("--earlier", type=click.IntRange(min=1), default=16, show_default=True, help="Trials of the first study.")
@click.option("--tokens", type=click.IntRange(min=1), default=60000, show_default=True, help="Training tokens a trial.")
@click.option("--shift", type=click.FloatRange(min=1), default=3.0, show_default=True, help="Learning-rate shift.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed of the earlier study.")
@click.option("--draws", type=click.IntRange(min=1), default=300, show_default=True, help="First trials drawn a range.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None, help="The warm-started study's sampler. "
              "[default: the space file's, as the earlier study]")  # fmt: skip
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Keep the earlier study here and reuse "
              "it when run again. [default: a temporary folder]")  # fmt: skip
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(earlier: int, tokens: int, shift: float, seed: int, draws: int, sampler: str | None, folder: str | None,
         data: str, val_data: str) -> None:  # fmt: skip
    prepare_sweep_process()
    with tempfile.TemporaryDirectory(prefix="gpt-draws-") as name:
        kept = Path(folder or name)
        kept.mkdir(parents=True, exist_ok=True)
        first = earlier_space(kept, tokens)
        done = run_sweep(earlier_settings(kept, first, earlier, seed, data, val_data), prepare_sweep_worker).study
        text = load_tokens(data, val_data=val_data)
        best = best_trial(done)
        ranges = {
            "earlier": (1e-4, 1e-2),
            "narrowed": (1e-4 * shift, 1e-2),
            "widened": (1e-4, 1e-2 * shift),
            "shifted": (1e-4 * shift, 1e-2 * shift),
        }
        click.echo(f"\nearlier study: {earlier} trials (seed {seed}), best {best.value:.4f} at learning rate "
                   f"{best.params['learning_rate']:.3g}, context {best.params['max_length']}")  # fmt: skip
        click.echo(f"first trials of a warm-started study, {draws} draws a range:")
        click.echo(
            f"{'range':<22}{'learning rate 10% / 50% / 90%':<34}{'beside the earlier best':>24}{'above 1e-2':>12}"
        )
        for kind, (low, high) in ranges.items():
            space = SearchSpace.load(with_lr_range(first, kept / f"{kind}.yaml", low, high)).with_options(
                sampler, None, seed
            )
            click.echo(
                f"{kind + f' {low:g}..{high:g}':<22}" + where(first_draws(done, space, text.tokens, draws), best)
            )


if __name__ == "__main__":
    main()
