"""Does the Pareto pruning rule pay? A two-objective sweep (loss against parameters) with and without it.

    python -m benchmarks.pareto_sweep --trials 20 --tokens 30000 --repeats 2

On WikiText-2 (train on test.txt, validate on valid.txt): the quick model's base with ``--tokens`` training
tokens a trial, searching the learning rate, dropout, width (``emb_dim`` 32, 64 or 128) and depth (1 to 4
layers), minimising ``final_val_loss`` and ``params``. Each repeat runs the same space and sampler seed
twice, ``--pruner pareto`` and ``--pruner none``, ``--trials`` each, no confirmations. Printed per repeat:
each sweep's wall time, trials pruned, its front (trial, loss, parameters), and its hypervolume in
(loss, millions of parameters) up to a reference point both sweeps share: the worst complete loss of either
and the space's largest model. Then the time saved and the hypervolume ratio, over the repeats.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click

from gpt.cost import parameter_count
from process_setup import prepare_sweep_process, prepare_sweep_worker, quiet_optuna
from sweeps.pareto import hypervolume_2d
from sweeps.ranking import front_trials
from sweeps.settings import SweepSettings
from sweeps.space import SearchSpace
from sweeps.sweep import run_sweep

WIKITEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2"
SPACE = """
base:
  mode: quick
  overrides: {{max_tokens: {tokens}}}
objectives:
  - {{metric: final_val_loss, direction: minimize}}
  - {{metric: params, direction: minimize}}
params:
  learning_rate: {{type: float, low: 3.0e-4, high: 1.0e-2, log: true}}
  drop_rate: {{type: float, low: 0.0, high: 0.2}}
  emb_dim: {{type: categorical, choices: [32, 64, 128]}}
  n_layers: {{type: int, low: 1, high: 4}}
seed: {seed}
"""


def sweep_once(folder: Path, space_file: Path, trials: int, pruner: str, data: str, val_data: str) -> tuple:
    """One sweep: its study, wall time and pruned count."""
    (folder / pruner).mkdir()
    settings = SweepSettings.in_folder(
        folder / pruner, space_file, trials, pruner=pruner, confirm=0, data=data, val_data=val_data,
        device="cpu", log_every=1000, study_name=f"pareto-{pruner}", experiment="pareto-benchmark",
    )  # fmt: skip
    started = time.time()
    study = run_sweep(settings, worker_setup=prepare_sweep_worker).study
    wall = time.time() - started
    return study, wall, sum(t.state.name == "PRUNED" for t in study.trials)


@click.command()
@click.option("--trials", type=click.IntRange(min=2), default=20, show_default=True)
@click.option("--tokens", type=click.IntRange(min=1), default=30000, show_default=True, help="Training tokens a trial.")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True, help="Sampler seeds, one each.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True, help="The first sampler seed.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(trials: int, tokens: int, repeats: int, first_seed: int, data: str, val_data: str) -> None:
    prepare_sweep_process()
    quiet_optuna()
    saved, ratios = [], []
    for seed in range(first_seed, first_seed + repeats):
        with tempfile.TemporaryDirectory(prefix="gpt-pareto-") as name:
            folder = Path(name)
            space_file = folder / "pareto.yaml"
            space_file.write_text(SPACE.format(tokens=tokens, seed=seed))
            space = SearchSpace.load(space_file)
            largest = parameter_count(space.trial_base().update(emb_dim=128, n_layers=4).model) / 1e6
            runs = {
                pruner: sweep_once(folder, space_file, trials, pruner, data, val_data) for pruner in ("pareto", "none")
            }
            worst = max(t.values[0] for study, _, _ in runs.values() for t in study.get_trials() if t.values)
            reference = (worst, largest)
            volumes = {}
            click.echo(f"\nrepeat {seed} ({trials} trials, {tokens:,} tokens a trial; reference point: loss "
                       f"{worst:.4f}, {largest:.2f}M params):")  # fmt: skip
            for pruner, (study, wall, pruned) in runs.items():
                members = front_trials(study)
                volumes[pruner] = hypervolume_2d([(t.values[0], t.values[1] / 1e6) for t in members], reference)
                points = ", ".join(f"#{t.number} {t.values[0]:.4f} @ {t.values[1] / 1e6:.2f}M" for t in members)
                click.echo(f"  --pruner {pruner:<6} {wall:6.0f}s, {pruned:>2} pruned, hypervolume "
                           f"{volumes[pruner]:.4f}; front: {points}")  # fmt: skip
            saved.append(1 - runs["pareto"][1] / runs["none"][1])
            ratios.append(volumes["pareto"] / volumes["none"] if volumes["none"] else float("nan"))
            click.echo(f"  time saved by the rule: {saved[-1]:.1%}; hypervolume, pruned / unpruned: {ratios[-1]:.4f}")
    if repeats > 1:
        click.echo(f"\nover {repeats} repeats: time saved {statistics.fmean(saved):.1%} (each: "
                   f"{', '.join(f'{s:.1%}' for s in saved)}); hypervolume ratio {statistics.fmean(ratios):.4f} "
                   f"(each: {', '.join(f'{r:.4f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
