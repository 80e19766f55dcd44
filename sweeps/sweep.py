"""A sweep from start to end: open or resume the study, find its MLflow parent run, run the
workers, then leave the report and the registered best model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna
from mlflow import MlflowClient

from gpt.environment import LoadedText, load_tokens
from gpt.errors import UserError
from sweeps.callbacks import asked_for, parent_description
from sweeps.clock import Deadline, duration
from sweeps.confirm import confirm_best
from sweeps.objective import trial_config
from sweeps.ranking import BEST_LOSS, Pick, best_result
from sweeps.report import leaderboard, log_study_report
from sweeps.settings import SweepSettings
from sweeps.space import SearchSpace
from sweeps.storage import load_study, open_storage
from sweeps.study import finished_trials, open_study
from sweeps.study_runs import (
    best_run_id,
    create_parent_run,
    log_best_on_parent,
    remove_dropped_checkpoints,
    wait_for_parent_run,
)
from sweeps.time_budget import check_budget_holds_a_trial, probe_rates, trial_flops
from sweeps.warm_start import check_comparable, warm_start, warm_trials
from sweeps.workers import WorkerPlacement, run_workers
from tracking.models import register_run_model
from tracking.runs import set_description, tracked_run
from tracking.store import connect, experiment_id, redacted

log = logging.getLogger(__name__)


def parent_params(study: optuna.Study, space: SearchSpace) -> dict:
    return {
        "study": study.study_name,
        "space_file": str(space.path),
        "objective": f"{space.direction} {space.metric}",
        **{f"base.{k}": v for k, v in space.base.to_flat_dict().items()},
        **{f"space.{p.name}": p.describe() for p in space.params},
    }


def registered_name(study_name: str) -> str:
    return f"gpt-{study_name}"


def register_best_model(study: optuna.Study, client: MlflowClient, pick: Pick = BEST_LOSS) -> str:
    """The best configuration's model (by ``pick``: from the front), registered as ``gpt-<study>``; the same
    run registers nothing new."""
    return register_run_model(client, best_run_id(study, pick), registered_name(study.study_name))


@dataclass(frozen=True)
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    experiment_id: str


def start_the_clock(settings: SweepSettings, space: SearchSpace, text: LoadedText, started: float) -> SweepSettings:
    """Settings with the deadline of their time budget, counted from ``started``, and the rates a few timed
    training steps and an evaluation batch of the space's base configuration run at here; a budget that
    cannot hold one trial (and its confirmations) is refused now."""
    base, total_steps = trial_config(space, {}, text.tokens)
    probe = probe_rates(base, text, settings.run.device)
    first_trial_s = probe.seconds(trial_flops(base, total_steps, text.tokens))
    check_budget_holds_a_trial(settings.time_budget, first_trial_s, settings.confirm, settings.confirm_seeds)
    log.info(f"Time budget {duration(settings.time_budget)}: a trial of the base configuration takes about "
             f"{duration(first_trial_s)} here, by a few timed steps and an evaluation")  # fmt: skip
    return replace(settings, deadline=Deadline.starting_now(settings.time_budget, probe, started))


def run_sweep(
    settings: SweepSettings,
    worker_setup: Callable[[WorkerPlacement], None],
    dry_run: bool = False,
    started: float | None = None,
) -> SweepResult | None:
    """Check everything, then search: one MLflow parent run, a child run per trial.

    ``worker_setup`` runs first in each spawned worker process: its placement (GPU, threads) and the
    caller's process-wide settings, such as ``process_setup.prepare_sweep_worker``. ``started`` is when
    the command began (``time.time()``, now if not given): a time budget counts from it.
    """
    started = time.time() if started is None else started
    space = settings.load_space()
    settings = settings.with_texts_of(space)
    options = settings.run
    text = load_tokens(options.data, val_data=options.val_data, text_field=options.text_field)
    space.check_data(text.tokens)
    if settings.time_budget is not None:
        settings = start_the_clock(settings, space, text, started)
    earlier = None
    if settings.warm_start is not None:
        earlier_storage = settings.warm_start_storage or settings.storage
        earlier = load_study(settings.warm_start, earlier_storage, "--warm-start-storage")
        check_comparable(earlier, space)
    if dry_run:
        log.info(space.describe())
        log.info(
            f"Study {settings.study_name} in {redacted(settings.storage)}; "
            f"{asked_for(settings)}, {settings.workers} worker(s)"
        )
        return None
    client = connect(options.tracking_uri)
    settings = replace(settings, run=replace(options, tracking_uri=client.tracking_uri))
    storage = open_storage(settings.storage, retry_s=settings.storage_retry_s)
    study, created = open_study(space, settings.study_name, storage)
    if created and earlier is not None:
        log.info(warm_start(study, space, earlier, text.tokens, settings.warm_start_top).describe())
    elif earlier is not None and not warm_trials(study):
        log.info(f"--warm-start is for a new study: {study.study_name} exists, and resumes as it was")
    exp_id = experiment_id(client, options.experiment)
    parent_run_id = None if created else wait_for_parent_run(study, client)
    if parent_run_id is None:  # this process made the study (or its maker died before making the parent)
        parent_run_id = create_parent_run(study, client, exp_id, parent_params(study, space), space.path)
    count = f" of {settings.trials}" if settings.trials is not None else ""
    budget = f" (time budget {duration(settings.time_budget)})" if settings.time_budget is not None else ""
    log.info(
        f"Study {study.study_name}: {finished_trials(study)}{count} trials finished{budget}; "
        f"MLflow parent run {parent_run_id}; storage {redacted(settings.storage)}"
    )
    with tracked_run(client, exp_id, None, run_id=parent_run_id, system_metrics=options.system_metrics):
        run_workers(settings, text, worker_setup)
        if settings.confirm and settings.confirm_seeds:
            confirm_best(study, settings, client, exp_id, parent_run_id, text, space.metric)
            remove_dropped_checkpoints(study, client, settings.keep_checkpoints)
            # the leaderboard written after the last trial knew one seed per configuration
            set_description(client, parent_run_id, parent_description(study, space.metric, settings))
        log_best_on_parent(study, client, parent_run_id, space.metric)
        log_study_report(study, client, parent_run_id, space)
    log.info(leaderboard(study))
    try:
        registered, best = register_best_model(study, client), best_result(study)
        log.info(f"Best model registered as {registered}: trial {best.trial.number}, {best.describe(space.metric)}")
    except UserError as exc:  # no complete trial, or its checkpoint was not kept: the sweep itself succeeded
        log.info(f"Best model not registered: {exc}")
    return SweepResult(study, parent_run_id, exp_id)
