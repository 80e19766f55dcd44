"""Bookkeeping after each trial, as Optuna study callbacks that get the finished ``FrozenTrial``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from gpt.interrupt import stop_if_signalled
from sweeps.clock import duration
from sweeps.metrics import INFEASIBLE_ATTR, METRICS_ATTR
from sweeps.ranking import confirmations as confirmations_of
from sweeps.ranking import last_report, loss_of, objectives_of, ranked_trials
from sweeps.report import leaderboard, params_line
from sweeps.sampling import FAIL_REASON_ATTR, REPORT_POINTS
from sweeps.settings import SweepSettings
from sweeps.study_runs import RUN_ID_ATTR, log_best_on_parent, remove_dropped_checkpoints
from sweeps.trial_states import COUNTED_STATES, FINISHED_STATES, NOT_RUN_ATTR, trials_run_here
from tracking.runs import log_metrics, set_description, set_tags

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient


def trial_result(trial: FrozenTrial, metric: str) -> str:
    """``final_val_loss 5.1234``, ``pruned at 3/10 of training: val_loss 5.4321 on its 256-token validation
    subset, no final_val_loss``, or why it failed.

    A pruned trial's value (Optuna keeps its last report as one) is the pruner's measure, never ``metric``:
    the loss on the fixed subset each evaluation reads, or for ``best_val_loss`` the best of those so far.
    """
    reported = last_report(trial)
    if trial.state == TrialState.PRUNED and reported:
        measure = "best val_loss" if metric == "best_val_loss" else "val_loss"
        tokens = trial.user_attrs.get("config", {}).get("eval_tokens")
        subset = f"its {tokens:,}-token validation subset" if tokens else "its validation subset"
        return (
            f"pruned at {reported[0]}/{REPORT_POINTS} of training: {measure} {reported[1]:.4f} on {subset}, no {metric}"
        )
    if trial.values:
        infeasible = trial.user_attrs.get(INFEASIBLE_ATTR)
        return (
            f"{metric} {trial.values[0]:.4f}"
            + (costs_line(trial) if len(trial.values) > 1 else "")
            + (f" (infeasible: {infeasible})" if infeasible else "")
        )
    return trial.user_attrs.get(FAIL_REASON_ATTR, "no result")


def costs_line(trial: FrozenTrial) -> str:
    """``, params 1.23e+06, params_non_embedding 2.1e+05, tokens_per_second 8,712``: what the trial measured."""
    return "".join(f", {name} {value:,.4g}" for name, value in trial.user_attrs.get(METRICS_ATTR, {}).items())


def trial_description(trial: FrozenTrial, study_name: str, metric: str) -> str:
    """A trial run's description in MLflow's UI: its state, its result and its sampled values."""
    result = trial_result(trial, metric)
    rows = [f"| `{name}` | {value:.4g} |" if isinstance(value, float) else f"| `{name}` | {value} |"
            for name, value in trial.params.items()]  # fmt: skip
    return "\n".join(
        [f"**Trial {trial.number}** of study `{study_name}`: {trial.state.name}, {result}.", "",
         "| sampled | value |", "| --- | --- |", *rows]
    )  # fmt: skip


def parent_description(study: optuna.Study, metric: str, settings: SweepSettings) -> str:
    """The parent run's description: the study, its objective, what bounds it, and its leaderboard."""
    bound = asked_for(settings)
    return "\n".join(
        [f"**Sweep** `{study.study_name}`: {' and '.join(f'{o.direction} `{o.metric}`' for o in objectives_of(study))}"
         f"; asked for {bound}.",
         "", "```", leaderboard(study), "```"]
    )  # fmt: skip


def asked_for(settings: SweepSettings) -> str:
    """``30 trials``, ``30 trials (time budget 1h00m)`` or ``as many trials as a 1h00m budget holds``."""
    if settings.time_budget is None:
        return f"{settings.trials} trials"
    budget = duration(settings.time_budget)
    return (
        f"as many trials as a {budget} budget holds"
        if settings.trials is None
        else f"{settings.trials} trials (time budget {budget})"
    )


def progress_line(study: optuna.Study, trial: FrozenTrial, metric: str, settings: SweepSettings) -> str:
    """``[7/30] trial 7 COMPLETE: final_val_loss 5.1234; best 5.0123 (trial 3); 12.3s; <params>; ~4m10s left``.

    The time left is the mean finished trial's, times the trials still to run over the workers,
    plus the confirmations still to come; under a time budget it is the budget's (and the count has no
    ``/N`` when the budget alone bounds the sweep).
    """
    finished = trials_run_here(study, FINISHED_STATES)
    seconds = trial.duration.total_seconds() if trial.duration else 0.0
    ranked = ranked_trials(study)
    best = f"best {loss_of(ranked[0]):.4f} (trial {ranked[0].number})" if ranked else "no complete trial yet"
    if settings.deadline is not None:
        left = settings.deadline.describe_left()
    else:
        durations = [t.duration.total_seconds() for t in finished if t.duration]
        mean = sum(durations) / len(durations) if durations else seconds
        to_run = max(0, settings.trials - len(finished))
        confirmations = settings.confirm * settings.confirm_seeds - sum(map(len, confirmations_of(study).values()))
        left = f"~{duration(mean * (to_run / settings.workers + max(0, confirmations)))} left"
    count = f"{len(finished)}/{settings.trials}" if settings.trials is not None else f"{len(finished)}"
    return (
        f"[{count}] trial {trial.number} {trial.state.name}: {trial_result(trial, metric)}; {best}; "
        f"{seconds:.1f}s; {params_line(trial.params)}; {left}"
    )


class StopAtTrials:
    """Optuna's ``MaxTrialsCallback``, counting the finished and running trials run here, not a warm start's."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if len(trials_run_here(study, COUNTED_STATES)) >= self.trials:
            study.stop()


class TrialBookkeeper:
    """One line of progress; the trial's state and description on its run; the parent's best value and
    description; checkpoint clean-up."""

    def __init__(self, client: MlflowClient, parent_run_id: str, metric: str, settings: SweepSettings) -> None:
        self.client, self.parent_run_id, self.metric, self.settings = client, parent_run_id, metric, settings

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        stop_if_signalled()  # a signal swallowed during the trial still stops the sweep here
        if NOT_RUN_ATTR in trial.user_attrs:
            log.info(f"Trial {trial.number} not run: {trial.user_attrs[NOT_RUN_ATTR]}")
            return
        log.info(progress_line(study, trial, self.metric, self.settings))
        if RUN_ID_ATTR in trial.user_attrs:
            set_tags(self.client, trial.user_attrs[RUN_ID_ATTR], {
                "trial_state": trial.state.name,
                "mlflow.note.content": trial_description(trial, study.study_name, self.metric),
            })  # fmt: skip
        set_description(self.client, self.parent_run_id, parent_description(study, self.metric, self.settings))
        ranked = ranked_trials(study)
        if not ranked:
            return
        log_metrics(self.client, self.parent_run_id, trial.number, {"best_value": loss_of(ranked[0])})
        log_best_on_parent(study, self.client, self.parent_run_id, self.metric)
        remove_dropped_checkpoints(study, self.client, self.settings.checkpoints_while_searching)
