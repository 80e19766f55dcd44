"""Does a warm start pay? A finished study, then a shifted space searched cold and warm-started from it.

    python -m benchmarks.warm_start --earlier 16 --later 8 --tokens 60000

On WikiText-2 (train on test.txt, validate on valid.txt): a study of ``--earlier`` trials on the default
space (``--tokens`` training tokens a trial, no confirmations), then ``--later`` trials on the same
space with its learning-rate range shifted up by ``--shift`` (3 times by default: 3e-4..3e-2), once cold and
once with ``--warm-start`` from the first. Then, for reference, the earlier study continued on its own space
for ``--later`` more trials: a new study warm-started from it on the earlier space, which every earlier trial
joins, so it knows everything the earlier study knew, on the space it knew it in.
Printed: the earlier study's best, and for each later study the best of its own first k trials for every k,
and the first k at which it reaches the earlier best. All on fresh stores in a temp folder, or ``--folder``.

``--seed`` draws the earlier study; each ``--later-seed`` (repeatable; ``--seed`` if none) draws the later
studies again against that same earlier study, which tells what the later studies' own draws change from what
the shift does. With several, a summary per study kind: how often it reached the earlier best, and its best
minus the earlier best (mean ± standard error over the later seeds). ``--later-range LOW HIGH`` replaces the
shifted range, to take a shift apart: a narrowed range leaves earlier trials outside it, a widened one adds a
region no earlier trial saw. ``--later-sampler`` samples the cold and warm-started studies with another sampler
than the space file's (the continuation samples as the earlier study did).
``--folder`` keeps the studies and reuses them when the command runs again (``benchmarks.first_draws`` reads the
same folder).
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import click
import optuna

from process_setup import prepare_sweep_process, prepare_sweep_worker
from sweeps import SAMPLERS
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE
from sweeps.sweep import run_sweep
from sweeps.trial_states import trials_run_here

WIKITEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2"
LR_RANGE = "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}"
STUDY_NAMES = {"cold": "shifted-cold", "warm": "shifted-warm", "continued": "continued"}
KINDS = tuple(STUDY_NAMES)


def earlier_space(folder: Path, tokens: int) -> Path:
    """The default space with ``tokens`` training tokens a trial (instead of 3 epochs), written into ``folder``."""
    path = folder / "first.yaml"
    path.write_text(DEFAULT_SPACE.read_text().replace("    num_epochs: 3\n", f"    max_tokens: {tokens}\n"))
    return path


def with_lr_range(space: Path, path: Path, low: float, high: float) -> Path:
    """``space`` with the learning-rate range ``low``..``high``, written to ``path``."""
    path.write_text(
        space.read_text().replace(LR_RANGE, f"learning_rate: {{type: float, low: {low:g}, high: {high:g}, log: true}}")
    )
    return path


def earlier_settings(folder: Path, space: Path, trials: int, seed: int, data: str, val_data: str) -> SweepSettings:
    """The earlier study: ``trials`` trials on ``space``, no confirmations, its stores in ``folder``."""
    return SweepSettings.in_folder(folder, space, trials, data=data, val_data=val_data, device="cpu", log_every=1000,
                                   confirm=0, seed=seed, experiment="warm-start")  # fmt: skip


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The study's complete trial with the best final value."""
    return min(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.value)


def best_so_far(study: optuna.Study) -> list[float]:
    """The best complete value among the study's own first k trials (not those a warm start joined), for each k
    (inf before one completes)."""
    best, values = math.inf, []
    finished = trials_run_here(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    for trial in sorted(finished, key=lambda t: t.number):
        if trial.state == optuna.trial.TrialState.COMPLETE:
            best = min(best, trial.value)
        values.append(best)
    return values


def first_reaching(curve: list[float], target: float) -> int | None:
    """The first k whose best reaches ``target``; None if none does."""
    return next((k for k, v in enumerate(curve, start=1) if v <= target), None)


def mean_and_error(values: list[float]) -> str:
    """Mean ± standard error, to print; a single value alone."""
    if len(values) < 2:
        return f"{values[0]:+.4f}"
    return f"{statistics.mean(values):+.4f} ± {statistics.stdev(values) / math.sqrt(len(values)):.4f}"


@click.command()
@click.option("--earlier", type=click.IntRange(min=1), default=16, show_default=True, help="Trials of the first study.")
@click.option("--later", type=click.IntRange(min=1), default=8, show_default=True, help="Trials of each later one.")
@click.option("--tokens", type=click.IntRange(min=1), default=60000, show_default=True, help="Training tokens a trial.")
@click.option("--shift", type=click.FloatRange(min=1), default=3.0, show_default=True, help="Learning-rate shift.")
@click.option("--later-range", type=(float, float), default=None, help="The later studies' learning-rate range "
              "(LOW HIGH), instead of the shifted one: a narrower range leaves earlier trials outside it, a wider one "
              "adds a region no earlier trial saw.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed of the earlier study.")
@click.option("--later-seed", "later_seeds", type=int, multiple=True, help="Sampler seed of the later studies "
              "(repeatable: each draws them again against the same earlier study). [default: --seed]")  # fmt: skip
@click.option("--kind", "kinds", type=click.Choice(KINDS), multiple=True, help="Later studies to run. [default: all]")
@click.option("--later-sampler", type=click.Choice(SAMPLERS), default=None, help="The cold and warm-started "
              "studies' sampler. [default: the space file's, as the earlier study]")  # fmt: skip
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Keep the earlier and later studies "
              "here; an earlier study already there is reused. [default: a temporary folder]")  # fmt: skip
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(
    earlier: int,
    later: int,
    tokens: int,
    shift: float,
    later_range: tuple[float, float] | None,
    seed: int,
    later_seeds: tuple[int, ...],
    kinds: tuple[str, ...],
    later_sampler: str | None,
    folder: str | None,
    data: str,
    val_data: str,
) -> None:
    prepare_sweep_process()
    later_seeds, kinds = later_seeds or (seed,), kinds or KINDS
    low, high = later_range or (1e-4 * shift, 1e-2 * shift)
    if not 0 < low < high:
        raise click.BadParameter(f"{low:g}..{high:g} is not a range of learning rates", param_hint="--later-range")
    with tempfile.TemporaryDirectory(prefix="gpt-warm-") as name:
        kept = Path(folder or name)
        kept.mkdir(parents=True, exist_ok=True)
        first = earlier_space(kept, tokens)
        later_space = with_lr_range(first, kept / f"later-{low:g}-{high:g}.yaml", low, high)
        base = earlier_settings(kept, first, earlier, seed, data, val_data)
        done = run_sweep(base, worker_setup=prepare_sweep_worker).study
        target = best_trial(done).value
        spaces = {  # the continuation samples as the earlier study did
            "cold": (later_space, None, later_sampler),
            "warm": (later_space, done.study_name, later_sampler),
            "continued": (first, done.study_name, None),
        }
        curves: dict[tuple[str, int], list[float]] = {}
        for later_seed in later_seeds:
            for kind in kinds:
                space_path, warm_start, sampler = spaces[kind]
                study_name = f"{STUDY_NAMES[kind]}-{low:g}-{high:g}-seed{later_seed}-{sampler or 'default'}"
                settings = replace(base, space_path=space_path, trials=later, seed=later_seed, study_name=study_name,
                                   warm_start=warm_start, sampler=sampler)  # fmt: skip
                curves[kind, later_seed] = best_so_far(run_sweep(settings, worker_setup=prepare_sweep_worker).study)
    click.echo(f"\nearlier study: {earlier} trials (seed {seed}), best final_val_loss {target:.4f}")
    sampler = f"cold and warm-started with {later_sampler}, " if later_sampler else ""
    click.echo(f"learning rate range {low:g}..{high:g}, {sampler}best of the first k trials of each later study")
    click.echo(f"{'k':<20}" + "".join(f"{k:>8}" for k in range(1, later + 1)))
    for (kind, later_seed), curve in curves.items():
        click.echo(f"{kind + ' seed ' + str(later_seed):<20}" + "".join(f"{v:>8.4f}" for v in curve))
        reached = first_reaching(curve, target)
        click.echo(f"  reaches the earlier best {'at trial ' + str(reached) if reached else 'never'}")
    if len(later_seeds) > 1:
        click.echo(f"\nover {len(later_seeds)} later seeds: reached the earlier best within {later} trials; "
                   f"best of {later} minus the earlier best (mean ± standard error)")  # fmt: skip
        for kind in kinds:
            ends = [curves[kind, s][-1] - target for s in later_seeds]
            reached = sum(first_reaching(curves[kind, s], target) is not None for s in later_seeds)
            click.echo(f"{kind:<10} {reached} of {len(later_seeds)}   {mean_and_error(ends)}")
        if "warm" in kinds and "continued" in kinds:
            gaps = [curves["warm", s][-1] - curves["continued", s][-1] for s in later_seeds]
            click.echo(f"warm minus continued, paired by seed: {mean_and_error(gaps)}")


if __name__ == "__main__":
    main()
