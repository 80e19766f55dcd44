"""Does pruning pay? The same sweep (same space, same seed) with the space's pruner (hyperband for the default
space) or ``--pruner``, and with none.

    python -m benchmarks.pruning --trials 30 --data ../shared/data/the-verdict.txt

Prints each sweep's wall time, summed trial time and best value, and the ratios, all
measured in this run on fresh stores in a temp folder.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import click

from benchmarks.options import data_option
from process_setup import prepare_sweep_process, prepare_sweep_worker
from sweeps import PRUNERS
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE, SearchSpace
from sweeps.sweep import run_sweep


@click.command()
@click.option("--trials", type=int, default=30, show_default=True)
@click.option("--space", type=click.Path(path_type=Path), default=DEFAULT_SPACE, show_default=True)
@click.option("--pruner", type=click.Choice([p for p in PRUNERS if p != "none"]), help="Instead of the space's.")
@click.option("--seed", type=int, help="Sampler seed, instead of the space's.")
@data_option
def main(trials: int, space: Path, pruner: str | None, seed: int | None, data: str) -> None:
    prepare_sweep_process()
    pruned_by = pruner or SearchSpace.load(space).pruner
    results = {}
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
        base = SweepSettings.in_folder(folder, space, trials, experiment="pruning-benchmark", data=data, device="cpu",
                                       log_every=10, confirm=0, seed=seed)  # fmt: skip
        for name in (pruned_by, "none"):
            started = time.perf_counter()
            result = run_sweep(
                replace(base, pruner=name, study_name=f"bench-{name}"), worker_setup=prepare_sweep_worker
            )
            wall = time.perf_counter() - started
            finished = result.study.get_trials()[:trials]
            trial_seconds = sum(t.duration.total_seconds() for t in finished if t.duration)
            pruned = sum(t.state.name == "PRUNED" for t in finished)
            results[name] = (wall, trial_seconds, result.study.best_value, pruned)
    click.echo(f"\n{'pruner':<9} {'wall s':>8} {'trials s':>9} {'best':>8} {'pruned':>6}")
    for name, (wall, trial_seconds, best, pruned) in results.items():
        click.echo(f"{name:<9} {wall:>8.1f} {trial_seconds:>9.1f} {best:>8.4f} {pruned:>6}")
    (wall, _, best, _), (wall_none, _, best_none, _) = results[pruned_by], results["none"]
    click.echo(f"wall time {pruned_by}/none: {wall / wall_none:.2f}; best {pruned_by} - none: {best - best_none:+.4f}")


if __name__ == "__main__":
    main()
