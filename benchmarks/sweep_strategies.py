"""Which search finds the better model in the same wall time? Each strategy (a sampler and a pruner) runs
the project's sweep with the same ``--time-budget`` on WikiText-2 (train on test.txt, validate on
valid.txt); each pick is trained again with fresh seeds and scored on the whole validation file.

    python -m benchmarks.sweep_strategies --budget 300 --repeats 2 --retrain-seeds 2 --tokens 30000

Each sweep is ``runner.py sweep --time-budget BUDGET --sampler S --pruner P`` on the default space
(``--tokens`` training tokens a trial), its defaults otherwise (the 3 best confirmed on 2 more seeds,
inside the budget); its pick is the best configuration by its confirmed mean, retrained by
``benchmarks.peer_sweep``'s code with ``--retrain-seeds`` seeds no sweep used. Repeat ``r`` seeds every
sampler with ``r``, and runs the strategies in an order rotated by ``r``, so a slow spell of the machine
does not always fall on the same one. Printed: each repeat's picks, and per strategy the mean score over
repeats with its standard error, and the mean difference to the first strategy (paired by repeat).

Optuna's samplers model nothing before their start-up trials (TPE: 10, GP: 10), so a budget that holds
fewer trials compares pruners and luck, not samplers: keep ``--budget / trial time`` well above 10.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path

import click

from benchmarks.peer_sweep import RETRAIN_SEED, WIKITEXT, Pick, project_sweep, retrain_project, space_with_tokens
from gpt.environment import load_tokens
from process_setup import prepare_sweep_process, quiet_optuna
from sweeps import PRUNERS, SAMPLERS
from sweeps.space import SearchSpace

DEFAULT_STRATEGIES = "tpe+hyperband,tpe-multivariate+hyperband,tpe+median,gp+hyperband,random+hyperband"


def parse_strategies(ctx: click.Context, param: click.Parameter, text: str) -> list[tuple[str, str]]:
    """``sampler+pruner,...``, each name one the sweep accepts; a wrong one is a usage line (status 2)."""
    strategies = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        sampler, _, pruner = item.partition("+")
        if sampler not in SAMPLERS or pruner not in PRUNERS:
            raise click.BadParameter(
                f"{item!r}: each strategy is sampler+pruner, a sampler of {', '.join(SAMPLERS)} "
                f"and a pruner of {', '.join(PRUNERS)}"
            )
        strategies.append((sampler, pruner))
    if not strategies:
        raise click.BadParameter("name at least one strategy")
    return strategies


def mean_and_error(values: list[float]) -> str:
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):+.4f} ± {error:.4f}" if values else "-"


@click.command()
@click.option("--budget", type=click.FloatRange(min=1), default=300, show_default=True, help="Seconds a sweep.")
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--retrain-seeds", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--tokens", type=click.IntRange(min=1), default=30000, show_default=True, help="Training tokens a trial.")
@click.option("--strategies", default=DEFAULT_STRATEGIES, show_default=True, callback=parse_strategies)
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(budget: float, repeats: int, retrain_seeds: int, tokens: int, strategies: list[tuple[str, str]], data: str,
         val_data: str) -> None:  # fmt: skip
    prepare_sweep_process()
    quiet_optuna()
    text = load_tokens(data, val_data=val_data)
    seeds = [RETRAIN_SEED + i for i in range(retrain_seeds)]
    names = [f"{sampler}+{pruner}" for sampler, pruner in strategies]
    scores: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="gpt-strategies-") as name:
        folder = Path(name)
        space_file = space_with_tokens(folder, tokens)
        space = SearchSpace.load(space_file)
        for repeat in range(repeats):
            click.echo(f"repeat {repeat} (budget {budget:.0f}s, {tokens:,} tokens a trial; whole validation file, "
                       f"{retrain_seeds} fresh seeds):")  # fmt: skip
            shift = repeat % len(strategies)
            for sampler, pruner in strategies[shift:] + strategies[:shift]:
                config, trials, wall = project_sweep(
                    folder, space_file, data, val_data, budget, repeat, sampler, pruner
                )
                params = {name: config.to_flat_dict()[name] for name in space.names}
                pick = Pick(f"{sampler}+{pruner}", params, trials, wall, retrain_project(config, text, seeds))
                scores[pick.side].append(statistics.fmean(pick.scores))
                click.echo(pick.describe())
    click.echo(f"\nover {repeats} repeat(s): mean score ± standard error; difference to {names[0]}, paired by repeat")
    for name in names:
        differences = [a - b for a, b in zip(scores[name], scores[names[0]], strict=True)]
        click.echo(f"  {name:<28} {mean_and_error(scores[name])[1:]}   {mean_and_error(differences)}")


if __name__ == "__main__":
    main()
