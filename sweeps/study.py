"""The Optuna search: storage, study, the tracked trial objective and worker processes.

This is where Optuna and MLflow meet. The study keeps the id of its MLflow parent run
in its user attributes, so every later call and every worker finds the same parent.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import optuna
import sqlalchemy
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from gpt.data import TokenizedText, steps_per_epoch
from gpt.environment import load_tokens, prepare_environment
from gpt.errors import NonFiniteLossError, UserError, one_line
from gpt.interrupt import ctrl_c_remembered, stop_if_ctrl_c
from gpt.training import EvalResult, TrainingCallback, TrainingHistory
from sweeps.checkpoints import RUN_ID_ATTR, ranks_in_top, remove_dropped_checkpoints
from sweeps.recovery import (
    DEFAULT_HEARTBEAT_S,
    WORKER_ATTR,
    HeartbeatJournalStorage,
    StaleCallback,
    heartbeat_options,
    stale_trial_callback,
    this_worker,
)
from sweeps.report import leaderboard, log_study_report
from sweeps.runs import best_run_id, register_best_model
from sweeps.space import SearchSpace
from sweeps.tracking import (
    connect,
    experiment_id,
    log_checkpoint,
    log_metrics,
    log_params,
    probe_database,
    redacted,
    resolve_tracking_uri,
    run_params,
    set_tags,
    tracked_run,
    train_tracked,
)

JOURNAL_NAME = "optuna-journal.log"
REPORT_POINTS = 10
PARENT_RUN_ATTR = "mlflow_parent_run_id"
PARENT_SETTLE_S = 2.0
SCHEMA_ATTEMPTS = 5
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Each trial gets our own one-line summary; Optuna's warnings would add a traceback per failed trial.
optuna.logging.set_verbosity(optuna.logging.ERROR)
# A trial that fails for one of these ends FAILED and the sweep goes on; anything else is a bug and stops it.
TRIAL_FAILURES = (NonFiniteLossError, UserError, torch.OutOfMemoryError)


def default_study_name(space_path: str | Path) -> str:
    return f"sweep-{Path(space_path).stem}"


def default_storage(tracking_uri: str) -> str:
    """A journal file beside the MLflow database, or in the current folder for a remote store."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def open_storage(
    storage: str, heartbeat_s: int | None = None, on_stale: StaleCallback | None = None
) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL, else a journal file that several local processes share safely.

    With ``heartbeat_s`` the workers beat and trials of dead workers are failed and retried.
    """
    if "://" in storage:
        probe_database(storage, "Optuna storage")
        try:
            return rdb_storage(storage, heartbeat_options(heartbeat_s, on_stale) if heartbeat_s else {})
        except Exception as exc:  # SQLAlchemy and drivers raise many kinds for a storage they cannot use
            raise UserError(f"cannot open Optuna storage {redacted(storage)}: {one_line(exc)}") from None
    path = Path(storage)
    if path.is_dir():
        raise UserError(f"Optuna storage {path} is a folder; give a journal file path")
    if not path.parent.is_dir():
        raise UserError(f"folder of Optuna storage {path} does not exist")
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    if heartbeat_s:
        return HeartbeatJournalStorage(backend, heartbeat_s, on_stale)
    return optuna.storages.JournalStorage(backend)


def rdb_storage(url: str, options: dict) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; machines starting at once race to create its tables, so the loser retries."""
    for attempt in range(1, SCHEMA_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, **options)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.5 * attempt)  # the other machine's CREATE TABLE commits meanwhile
    return optuna.storages.RDBStorage(url, **options)


def make_sampler(space: SearchSpace, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    seed = None if space.seed is None else space.seed + worker_index  # workers must not sample in lockstep
    if space.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if space.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=REPORT_POINTS, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(
    space: SearchSpace, name: str, storage: optuna.storages.BaseStorage, worker_index: int = 0
) -> optuna.Study:
    """Create or resume ``name``; a study made from another space is refused."""
    study = optuna.create_study(
        storage=storage,
        sampler=make_sampler(space, worker_index),
        pruner=make_pruner(space),
        study_name=name,
        direction=space.direction,
        load_if_exists=True,
    )
    made_from = study.user_attrs.get("space_sha256")
    if made_from is None:
        study.set_user_attr("space_sha256", space.sha256)
        study.set_user_attr("space_file", str(space.path))
    elif made_from != space.sha256 or study.direction.name.lower() != space.direction:
        raise UserError(
            f"study {name!r} was made from a different search space ({study.user_attrs.get('space_file')}); "
            "pass --study with a new name to search this one"
        )
    return study


def load_study(name: str, storage: str) -> optuna.Study:
    """An existing study; a missing one is a clear error, not a new empty study."""
    if "://" not in storage and not Path(storage).is_file():
        raise UserError(f"no Optuna storage at {storage}; pass the --storage the sweep used")
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        raise UserError(f"no study named {name!r} in {redacted(storage)}") from None


def best_run_in(study_name: str, storage: str | None, tracking_uri: str | None) -> str:
    """The MLflow run of a study's best trial; the storage defaults to the one beside the store."""
    study = load_study(study_name, storage or default_storage(resolve_tracking_uri(tracking_uri)))
    return best_run_id(study)


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def ensure_parent_run(study: optuna.Study, client: MlflowClient, experiment: str, space: SearchSpace) -> str:
    """The study's MLflow parent run, made on the first call and found again afterwards."""
    run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if run_id:
        try:
            client.get_run(run_id)
        except MlflowException:
            raise UserError(
                f"study {study.study_name!r} logs to MLflow run {run_id}, which this tracking store does not hold; "
                "pass the --tracking-uri the study was started with"
            ) from None
        return run_id
    run_id = client.create_run(
        experiment, run_name=study.study_name, tags={"optuna_study": study.study_name}
    ).info.run_id
    study.set_user_attr(PARENT_RUN_ATTR, run_id)
    client.log_artifact(run_id, str(space.path))
    log_params(
        client,
        run_id,
        {
            "study": study.study_name,
            "space_file": str(space.path),
            "objective": f"{space.direction} {space.metric}",
            **{f"base.{k}": v for k, v in space.base.to_flat_dict().items()},
            **{f"space.{p.name}": p.distribution for p in space.params},
        },
    )
    client.set_terminated(run_id, "FINISHED")
    # Sweeps started at once on several machines may each have made a parent; the last write won.
    time.sleep(PARENT_SETTLE_S)
    winner = study.user_attrs[PARENT_RUN_ATTR]  # read from the storage again, not cached
    if winner != run_id:
        client.delete_run(run_id)
    return winner


def objective_value(history: TrainingHistory, metric: str) -> float:
    if not history.evals:
        raise NonFiniteLossError("training ended before its first evaluation")
    return history.best_eval.val_loss if metric == "best_val_loss" else history.evals[-1].val_loss


class PruningReporter(TrainingCallback):
    """Reports to Optuna at fixed fractions of each trial's training, so steps line up across trials.

    Trials with other context lengths or batch sizes run other numbers of optimizer
    steps; the report step is the tenth of training reached (0..10), not the step.
    """

    def __init__(self, trial: optuna.Trial, metric: str, points: int = REPORT_POINTS) -> None:
        self.trial, self.metric, self.points = trial, metric, points
        self.best, self.last_point = math.inf, -1

    def on_eval(self, result: EvalResult) -> None:
        self.best = min(self.best, result.val_loss)
        point = min(int(result.progress * self.points), self.points)
        if point <= self.last_point:
            return
        self.last_point = point
        self.trial.report(self.best if self.metric == "best_val_loss" else result.val_loss, point)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at {point}/{self.points} of training")


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs to join the sweep; plain values, so it pickles."""

    space_path: Path
    sampler: str | None
    pruner: str | None
    seed: int | None
    study_name: str
    storage: str
    tracking_uri: str
    experiment: str
    data: str | None
    device: str
    trials: int
    timeout: float | None
    keep_checkpoints: int
    log_every: int = 1
    workers: int = 1
    heartbeat_s: int = DEFAULT_HEARTBEAT_S

    def load_space(self) -> SearchSpace:
        return SearchSpace.load(self.space_path).with_options(self.sampler, self.pruner, self.seed)


class TrialObjective:
    """Trains one sampled config as an MLflow child run and returns the objective."""

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        settings: SweepSettings,
        client: MlflowClient,
        experiment: str,
        parent_run_id: str,
        tokens: TokenizedText,
        tokenizer: Any,
    ) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.client, self.experiment, self.parent_run_id = client, experiment, parent_run_id
        self.tokens, self.tokenizer = tokens, tokenizer

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except TRIAL_FAILURES as exc:
            trial.set_user_attr("fail_reason", one_line(exc, 500))
            raise

    def _run(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, this_worker())
        sampled = self.space.sample(trial)
        config = self.space.base.update(**sampled)
        # Evaluate at REPORT_POINTS fixed fractions of this trial's training, whatever its length.
        total_steps = config.num_epochs * steps_per_epoch(self.tokens, config)
        config = config.update(eval_freq=max(1, total_steps // REPORT_POINTS))
        trial.set_user_attr("config", config.to_dict())
        tags = {
            "mlflow.parentRunId": self.parent_run_id,
            "optuna_study": self.study.study_name,
            "trial_number": str(trial.number),
        }
        pruned: optuna.TrialPruned | None = None
        with tracked_run(self.client, self.experiment, f"{self.study.study_name}-trial-{trial.number}", tags) as run_id:
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            env = prepare_environment(config, device=self.settings.device, tokenizer=self.tokenizer, tokens=self.tokens)
            extra = {"trial_number": trial.number, "study": self.study.study_name}
            log_params(
                self.client, run_id, run_params(env, {**extra, **{f"sampled.{k}": v for k, v in sampled.items()}})
            )
            try:
                history = train_tracked(
                    env,
                    self.client,
                    run_id,
                    [PruningReporter(trial, self.space.metric)],
                    self.settings.log_every,
                    progress_bar=False,
                    keep_checkpoint=False,
                )
                value = objective_value(history, self.space.metric)
            except optuna.TrialPruned as exc:
                set_tags(self.client, run_id, {"trial_state": "PRUNED", "pruned_reason": str(exc)})
                pruned = exc
            except TRIAL_FAILURES:
                set_tags(self.client, run_id, {"trial_state": "FAIL"})
                raise
            else:
                set_tags(self.client, run_id, {"trial_state": "COMPLETE"})
                if ranks_in_top(self.study, value, self.settings.keep_checkpoints):
                    log_checkpoint(env, self.client, run_id, history)
        if pruned is not None:
            raise pruned
        return value


class ParentRunUpdater:
    """After each trial: the parent's best value and params, checkpoint clean-up, one line of progress."""

    def __init__(self, client: MlflowClient, parent_run_id: str, keep_checkpoints: int) -> None:
        self.client, self.parent_run_id, self.keep = client, parent_run_id, keep_checkpoints

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        stop_if_ctrl_c()  # a press swallowed during the trial still stops the sweep here
        duration = trial.duration.total_seconds() if trial.duration else 0.0
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        reason = f" ({trial.user_attrs['fail_reason']})" if "fail_reason" in trial.user_attrs else ""
        click.echo(f"Trial {trial.number} {trial.state.name}{reason}: value {value} in {duration:.1f}s {trial.params}")
        try:
            best = study.best_trial
        except ValueError:  # no complete trial yet
            return
        log_metrics(self.client, self.parent_run_id, trial.number, {"best_value": best.value})
        set_tags(
            self.client,
            self.parent_run_id,
            {"best_trial": best.number, **{f"best.{k}": v for k, v in best.params.items()}},
        )
        remove_dropped_checkpoints(study, self.client, self.keep)


def run_worker(settings: SweepSettings, worker_index: int = 0, loaded: tuple[TokenizedText, Any] | None = None) -> None:
    """Join the study and run trials until it holds ``settings.trials`` finished ones.

    ``loaded`` is the text this process has already tokenized, if any.
    """
    space = settings.load_space()
    client = connect(settings.tracking_uri)
    tokens, tokenizer = loaded or load_tokens(settings.data)
    storage = open_storage(settings.storage, settings.heartbeat_s, stale_trial_callback(client.tracking_uri))
    study = open_study(space, settings.study_name, storage, worker_index)
    parent_run_id = study.user_attrs[PARENT_RUN_ATTR]
    remaining = settings.trials - finished_trials(study)
    if remaining <= 0:
        return
    study.optimize(
        TrialObjective(
            study, space, settings, client, experiment_id(client, settings.experiment), parent_run_id, tokens, tokenizer
        ),
        n_trials=remaining,
        timeout=settings.timeout,
        catch=TRIAL_FAILURES,
        callbacks=[
            MaxTrialsCallback(settings.trials, states=FINISHED_STATES),
            ParentRunUpdater(client, parent_run_id, settings.keep_checkpoints),
        ],
    )


def _worker_process(settings: SweepSettings, worker_index: int, threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        with ctrl_c_remembered():
            run_worker(settings, worker_index)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except UserError as exc:
        click.echo(f"Error: worker {worker_index}: {exc}", err=True)
        raise SystemExit(2) from None


def run_workers(settings: SweepSettings, loaded: tuple[TokenizedText, Any]) -> None:
    """Run the trials here, or in ``workers`` spawned processes that split the cores."""
    if settings.workers == 1:
        run_worker(settings, loaded=loaded)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // settings.workers)
    context = multiprocessing.get_context("spawn")  # never fork a process that has torch's threads running
    processes = [
        context.Process(target=_worker_process, args=(settings, index, threads), name=f"sweep-worker-{index}")
        for index in range(settings.workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:  # each worker closes its own trial on the same Ctrl-C
            process.join()
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise UserError(f"{', '.join(failed)} stopped with an error; see the lines above")


@dataclass(frozen=True)
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    experiment_id: str


def run_sweep(settings: SweepSettings, dry_run: bool = False) -> SweepResult | None:
    """Check everything, then search: one MLflow parent run, a child run per trial."""
    space = settings.load_space()
    if settings.trials < 1:
        raise UserError(f"trials must be >= 1 (got {settings.trials})")
    if settings.heartbeat_s < 1:
        raise UserError(f"heartbeat must be >= 1 second (got {settings.heartbeat_s})")
    if settings.workers < 1:
        raise UserError(f"workers must be >= 1 (got {settings.workers})")
    if settings.log_every < 1:
        raise UserError(f"log_every must be >= 1 (got {settings.log_every})")
    if settings.keep_checkpoints < 0:
        raise UserError(f"keep_checkpoints must be >= 0 (got {settings.keep_checkpoints})")
    if settings.timeout is not None and settings.timeout <= 0:
        raise UserError(f"timeout must be > 0 seconds (got {settings.timeout})")
    loaded = load_tokens(settings.data)
    space.check_data(loaded[0])
    if dry_run:
        click.echo(space.describe())
        click.echo(
            f"Study {settings.study_name} in {settings.storage}; {settings.trials} trials, {settings.workers} worker(s)"
        )
        return None
    client = connect(settings.tracking_uri)
    settings = replace(settings, tracking_uri=client.tracking_uri)
    study = open_study(space, settings.study_name, open_storage(settings.storage))
    exp_id = experiment_id(client, settings.experiment)
    parent_run_id = ensure_parent_run(study, client, exp_id, space)
    done = finished_trials(study)
    click.echo(
        f"Study {study.study_name}: {done} of {settings.trials} trials finished; "
        f"MLflow parent run {parent_run_id}; storage {settings.storage}"
    )
    with tracked_run(client, exp_id, None, run_id=parent_run_id):
        run_workers(settings, loaded)
        log_study_report(study, client, parent_run_id, space.metric)
    click.echo(leaderboard(study))
    try:
        click.echo(f"Best model registered as {register_best_model(study, client)}")
    except UserError as exc:  # no complete trial, or its checkpoint was not kept: the sweep itself succeeded
        click.echo(f"Best model not registered: {exc}")
    return SweepResult(study, parent_run_id, exp_id)
