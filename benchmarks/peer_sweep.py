"""Better models per hour than a hand-written Optuna loop? Both sides get the same wall time on WikiText-2
(train on test.txt, validate on valid.txt), then each side's pick is trained again with fresh seeds and
scored on the whole validation file.

    python -m benchmarks.peer_sweep --budget 1200 --repeats 3 --retrain-seeds 3

- **The project**: ``runner.py sweep --time-budget BUDGET`` on the default space (``--tokens`` training tokens
  a trial), with its defaults otherwise: TPE + hyperband, ``final_val_loss``, the 3 best confirmed on 2 more
  seeds, all inside the budget. Its pick is the best configuration by its confirmed mean.
- **The peer**: the loop a person writes from Optuna's and the book's examples: the same space and
  tokens a trial, ``benchmarks.plain_gpt.PlainGPT`` (PyTorch's default initialisation) trained by the
  book's loop, an evaluation of the first 2 validation batches at each tenth of training reported to
  Optuna's median pruner, the best of those returned, TPE, ``study.optimize(timeout=BUDGET)``, and an
  MLflow run per trial in its own store. Its pick is ``study.best_params``.

Repeat ``r`` seeds both samplers with ``r``; ``--first-repeat`` adds repeats to an earlier run's. Each pick is
retrained by its own side's code (the project's training loop, or the peer's plain one) with ``--retrain-seeds``
seeds it never saw, and scored by the same function: the loss on every token of the validation file. Printed:
each repeat's picks and scores, and the mean difference (project - peer; below 0, the project's model is better)
with its standard error.

The sides run one after the other on the whole machine, or with ``--sides-at-once`` at the same time, each in
a process of its own kept to half the cores: the same share for each, in half the time.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import mlflow
import optuna
import torch
from torch import nn

from benchmarks.plain_gpt import PlainGPT, PlainWindows, load_into
from gpt.config import TrainingConfig
from gpt.environment import LoadedText, TrainingSetup, load_tokens, prepare_environment
from gpt.evaluation import ValidationSpan, block_length, windows_of
from gpt.training import train, validation_loss
from process_setup import keep_to_cores, prepare_sweep_process, prepare_sweep_worker
from sweeps.objective import trial_config
from sweeps.ranking import best_result
from sweeps.sampling import REPORT_POINTS
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE, SearchSpace
from sweeps.sweep import run_sweep
from sweeps.workers import stop_when_orphaned

WIKITEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wikitext-2"
PEER_EVAL_BATCHES = 2  # the book's eval_iter
RETRAIN_SEED = 10_000  # retraining seeds start here: neither side's search used them


@dataclass(frozen=True)
class Pick:
    side: str
    params: dict
    trials: int
    wall_s: float
    scores: tuple[float, ...]

    def describe(self) -> str:
        values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        spread = f" ± {statistics.stdev(self.scores):.4f}" if len(self.scores) > 1 else ""
        return (
            f"  {self.side:<8} {statistics.fmean(self.scores):.4f}{spread}  "
            f"({self.trials} trials in {self.wall_s:.0f}s)  {values}"
        )


def whole_file_loss(env: TrainingSetup) -> float:
    """The loss on every token of the validation file, in blocks as long as the space's longest context."""
    span = ValidationSpan.of(env.tokens.val_ids, len(env.tokens.val_ids), block_length(128))
    env.model.eval()
    return validation_loss(env, windows_of(span, env.config.max_length))


def space_with_tokens(folder: Path, tokens: int) -> Path:
    """The default space, each trial trained on ``tokens`` tokens instead of 3 epochs."""
    path = folder / "peer.yaml"
    path.write_text(DEFAULT_SPACE.read_text().replace("    num_epochs: 3\n", f"    max_tokens: {tokens}\n"))
    return path


def project_sweep(
    folder: Path, space_file: Path, data: str, val_data: str, budget: float, seed: int,
    sampler: str | None = None, pruner: str | None = None,
) -> tuple[TrainingConfig, int, float]:  # fmt: skip
    """``runner.py sweep --time-budget`` (with ``--sampler``/``--pruner`` where given, else the space's):
    its pick's config, its trials and its wall time."""
    name = "-".join(["project", *(s for s in (sampler, pruner) if s), str(seed)])
    (folder / name).mkdir()
    settings = SweepSettings.in_folder(
        folder / name, space_file, None, time_budget=budget, seed=seed, data=data, val_data=val_data,
        device="cpu", log_every=1000, study_name=name, experiment="peer-benchmark", sampler=sampler, pruner=pruner,
    )  # fmt: skip
    started = time.time()
    result = run_sweep(settings, worker_setup=prepare_sweep_worker, started=started)
    wall = time.time() - started
    best = best_result(result.study).trial
    ran = [t for t in result.study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    return TrainingConfig.from_dict(best.user_attrs["config"]), len(ran), wall


class PeerObjective:
    """What a person writes: suggest, build the plain model, train with the book's loop, evaluate a couple of
    validation batches at each tenth, report, prune, return the best evaluation; log the trial to MLflow."""

    def __init__(self, space: SearchSpace, text: LoadedText, seed: int) -> None:
        self.space, self.text, self.seed = space, text, seed
        self.train_ids, self.val_ids = text.tokens.train_ids.tolist(), text.tokens.val_ids.tolist()

    def __call__(self, trial: optuna.Trial) -> float:
        config, _ = trial_config(self.space, self.space.sample(trial), self.text.tokens)
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params(trial.params)
            best = math.inf
            for point, val_loss in PlainRun(config, self.train_ids, self.val_ids, self.seed + trial.number).reports():
                mlflow.log_metric("val_loss", val_loss, step=point)
                best = min(best, val_loss)
                trial.report(val_loss, point)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            mlflow.log_metric("best_val_loss", best)
        return best


class PlainRun:
    """The book's loop on ``PlainGPT``: ``max_tokens`` of training, the first ``PEER_EVAL_BATCHES``
    validation batches evaluated at each tenth."""

    def __init__(self, config: TrainingConfig, train_ids: list[int], val_ids: list[int], seed: int) -> None:
        torch.manual_seed(seed)
        self.config = config
        windows = PlainWindows(train_ids, config.max_length, config.stride)
        shuffled = torch.Generator().manual_seed(seed)
        self.loader = torch.utils.data.DataLoader(
            windows, batch_size=config.batch_size, shuffle=True, drop_last=True, generator=shuffled
        )
        first = val_ids[: (PEER_EVAL_BATCHES * config.batch_size + 1) * config.max_length]
        val_loader = torch.utils.data.DataLoader(PlainWindows(first, config.max_length, config.max_length),
                                                 batch_size=config.batch_size)  # fmt: skip
        self.val_batches = list(val_loader)[:PEER_EVAL_BATCHES]
        self.model = PlainGPT(config.model)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )

    def evaluate(self) -> float:
        self.model.eval()
        with torch.no_grad():
            losses = [nn.functional.cross_entropy(self.model(x).flatten(0, 1), y.flatten()).item()
                      for x, y in self.val_batches]  # fmt: skip
        self.model.train()
        return sum(losses) / len(losses)

    def reports(self) -> Iterator[tuple[int, float]]:
        """Train, yielding ``(tenth of training, validation loss)`` at each tenth."""
        total = self.config.training_steps(len(self.loader))
        step, reported = 0, 0
        while step < total:
            for inputs, targets in self.loader:
                self.optimizer.zero_grad()
                loss = nn.functional.cross_entropy(self.model(inputs).flatten(0, 1), targets.flatten())
                loss.backward()
                self.optimizer.step()
                loss.item()  # as the book's loop does each step
                step += 1
                if step * REPORT_POINTS // total > reported:
                    reported = step * REPORT_POINTS // total
                    yield reported, self.evaluate()
                if step == total:
                    return


def peer_sweep(folder: Path, space: SearchSpace, text: LoadedText, budget: float, seed: int):
    """The hand-written loop: its pick, its trials and its wall time."""
    mlflow.set_tracking_uri(f"sqlite:///{folder / f'peer-{seed}.db'}")
    mlflow.set_experiment("peer")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), pruner=optuna.pruners.MedianPruner())
    started = time.time()
    study.optimize(PeerObjective(space, text, seed), timeout=budget)
    wall = time.time() - started
    ran = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    return study.best_params, len(ran), wall


def retrain_project(config: TrainingConfig, text: LoadedText, seeds: list[int]) -> tuple[float, ...]:
    scores = []
    for seed in seeds:
        env = prepare_environment(config.update(seed=seed), device="cpu", tokenizer=text.tokenizer, tokens=text.tokens)
        train(env, [], log_every=1000, progress_bar=False)
        scores.append(whole_file_loss(env))
    return tuple(scores)


def retrain_peer(space: SearchSpace, params: dict, text: LoadedText, seeds: list[int]) -> tuple[float, ...]:
    train_ids, val_ids = text.tokens.train_ids.tolist(), text.tokens.val_ids.tolist()
    config, _ = trial_config(space, params, text.tokens)
    scores = []
    for seed in seeds:
        run = PlainRun(config, train_ids, val_ids, seed)
        for _ in run.reports():
            pass
        env = prepare_environment(config, device="cpu", tokenizer=text.tokenizer, tokens=text.tokens)
        load_into(env.model, run.model)
        scores.append(whole_file_loss(env))
    return tuple(scores)


def project_side(folder: Path, space_file: Path, data: str, val_data: str, budget: float, repeat: int,
                 seeds: list[int]) -> Pick:  # fmt: skip
    """The project's sweep, then its pick retrained on ``seeds``."""
    config, trials, wall = project_sweep(folder, space_file, data, val_data, budget, repeat)
    space, text = SearchSpace.load(space_file), load_tokens(data, val_data=val_data)
    params = {name: config.to_flat_dict()[name] for name in space.names}
    return Pick("project", params, trials, wall, retrain_project(config, text, seeds))


def peer_side(folder: Path, space_file: Path, data: str, val_data: str, budget: float, repeat: int,
              seeds: list[int]) -> Pick:  # fmt: skip
    """The hand-written loop, then its pick retrained on ``seeds``."""
    space, text = SearchSpace.load(space_file), load_tokens(data, val_data=val_data)
    params, trials, wall = peer_sweep(folder, space, text, budget, repeat)
    return Pick("peer", params, trials, wall, retrain_peer(space, params, text, seeds))


def side_on_cores(benchmark_pid: int, cores: set[int], side: Callable[..., Pick], *args: object) -> Pick:
    """One side in a process of its own, kept to its share of the cores; it stops when the benchmark (process
    ``benchmark_pid``) does, even one that ended before this process got here."""
    stop_when_orphaned(benchmark_pid)
    keep_to_cores(cores)
    prepare_sweep_process()
    return side(*args)


def halves(cores: list[int]) -> tuple[set[int], set[int]]:
    """The cores split in two, one share per side."""
    return set(cores[: len(cores) // 2]), set(cores[len(cores) // 2 :])


@click.command()
@click.option("--budget", type=click.FloatRange(min=1), default=1200, show_default=True, help="Seconds each side gets.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--first-repeat", type=click.IntRange(min=0), default=0, show_default=True,
              help="The first repeat's number (its sampler seed): adds repeats to an earlier run's.")  # fmt: skip
@click.option("--retrain-seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--tokens", type=click.IntRange(min=1), default=60000, show_default=True, help="Training tokens a trial.")
@click.option("--sides-at-once", is_flag=True, help="Run a repeat's two sides at the same time, each on half the "
              "cores (2 or more): the benchmark takes half as long, each side on half the machine.")  # fmt: skip
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "test.txt"))
@click.option("--val-data", type=click.Path(exists=True, dir_okay=False), default=str(WIKITEXT / "valid.txt"))
def main(budget: float, repeats: int, first_repeat: int, retrain_seeds: int, tokens: int, sides_at_once: bool,
         data: str, val_data: str) -> None:  # fmt: skip
    prepare_sweep_process()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []  # Linux tells, and pins
    if sides_at_once and len(cores) < 2:
        raise click.BadParameter(f"needs 2 cores this process may be kept to; it has {len(cores)}",
                                 param_hint="--sides-at-once")  # fmt: skip
    seeds = [RETRAIN_SEED + i for i in range(retrain_seeds)]
    differences = []
    with tempfile.TemporaryDirectory(prefix="gpt-peer-") as name:
        folder = Path(name)
        space_file = space_with_tokens(folder, tokens)
        for repeat in range(first_repeat, first_repeat + repeats):
            args = (folder, space_file, data, val_data, budget, repeat, seeds)
            if sides_at_once:
                with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
                    ours, theirs = halves(cores)
                    sides = (
                        pool.submit(side_on_cores, os.getpid(), ours, project_side, *args),
                        pool.submit(side_on_cores, os.getpid(), theirs, peer_side, *args),
                    )
                    project, peer = (side.result() for side in sides)
            else:
                project, peer = project_side(*args), peer_side(*args)
            differences.append(statistics.fmean(project.scores) - statistics.fmean(peer.scores))
            click.echo(f"repeat {repeat} (budget {budget:.0f}s, {tokens:,} tokens a trial; whole validation file, "
                       f"{retrain_seeds} fresh seeds):\n{project.describe()}\n{peer.describe()}")  # fmt: skip
    mean = statistics.fmean(differences)
    error = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else float("nan")
    click.echo(f"\nproject - peer over {repeats} repeat(s): {mean:+.4f} ± {error:.4f} (standard error)")


if __name__ == "__main__":
    main()
