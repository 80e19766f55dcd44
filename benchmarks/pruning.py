"""Does pruning pay? The same sweep (same space, same seed) with the median pruner and with none.

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
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE
from sweeps.sweep import run_sweep


@click.command()
@click.option("--trials", type=int, default=30, show_default=True)
@click.option("--space", type=click.Path(path_type=Path), default=DEFAULT_SPACE, show_default=True)
@data_option
def main(trials: int, space: Path, data: str) -> None:
    prepare_sweep_process()
    results = {}
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
        base = SweepSettings.in_folder(
            folder, space, trials, experiment="pruning-benchmark", data=data, device="cpu", log_every=10, confirm=0
        )
        for pruner in ("median", "none"):
            started = time.perf_counter()
            result = run_sweep(
                replace(base, pruner=pruner, study_name=f"bench-{pruner}"), worker_setup=prepare_sweep_worker
            )
            wall = time.perf_counter() - started
            finished = result.study.get_trials()[:trials]
            trial_seconds = sum(t.duration.total_seconds() for t in finished if t.duration)
            pruned = sum(t.state.name == "PRUNED" for t in finished)
            results[pruner] = (wall, trial_seconds, result.study.best_value, pruned)
    click.echo(f"\n{'pruner':<8} {'wall s':>8} {'trials s':>9} {'best':>8} {'pruned':>6}")
    for pruner, (wall, trial_seconds, best, pruned) in results.items():
        click.echo(f"{pruner:<8} {wall:>8.1f} {trial_seconds:>9.1f} {best:>8.4f} {pruned:>6}")
    median, none = results["median"], results["none"]
    click.echo(f"wall time median/none: {median[0] / none[0]:.2f}; best median - none: {median[2] - none[2]:+.4f}")


if __name__ == "__main__":
    main()
