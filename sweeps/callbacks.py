"""Bookkeeping after each trial, as Optuna study callbacks that get the finished ``FrozenTrial``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import optuna
from optuna.trial import FrozenTrial

from gpt.interrupt import stop_if_signalled
from sweeps.objective import NOT_RUN_ATTR
from sweeps.report import leaderboard
from sweeps.sampling import FAIL_REASON_ATTR
from sweeps.study_runs import RUN_ID_ATTR, remove_dropped_checkpoints
from tracking.runs import log_metrics, set_description, set_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient


def trial_description(trial: FrozenTrial, study_name: str, metric: str) -> str:
    """A trial run's description in MLflow's UI: its state, its result and its sampled values."""
    if trial.value is not None:
        result = f"{metric} **{trial.value:.4f}**"
    elif trial.intermediate_values:
        point = max(trial.intermediate_values)
        result = f"pruned at {point}/10 of training, {metric} {trial.intermediate_values[point]:.4f} by then"
    else:
        result = trial.user_attrs.get(FAIL_REASON_ATTR, "no result")
    rows = [f"| `{name}` | {value:.4g} |" if isinstance(value, float) else f"| `{name}` | {value} |"
            for name, value in trial.params.items()]  # fmt: skip
    return "\n".join(
        [f"**Trial {trial.number}** of study `{study_name}`: {trial.state.name}, {result}.", "",
         "| sampled | value |", "| --- | --- |", *rows]
    )  # fmt: skip


def parent_description(study: optuna.Study, metric: str, trials: int) -> str:
    """The parent run's description: the study, its objective, how far it is, and its leaderboard."""
    return "\n".join(
        [f"**Sweep** `{study.study_name}`: {study.direction.name.lower()} `{metric}`, {trials} trials asked for.",
         "", "```", leaderboard(study), "```"]
    )  # fmt: skip


class TrialBookkeeper:
    """One line of progress; the trial's state and description on its run; the parent's best value and
    description; checkpoint clean-up."""

    def __init__(
        self, client: MlflowClient, parent_run_id: str, keep_checkpoints: int, metric: str, trials: int
    ) -> None:
        self.client, self.parent_run_id, self.keep = client, parent_run_id, keep_checkpoints
        self.metric, self.trials = metric, trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        stop_if_signalled()  # a signal swallowed during the trial still stops the sweep here
        if NOT_RUN_ATTR in trial.user_attrs:
            click.echo(f"Trial {trial.number} not run: {trial.user_attrs[NOT_RUN_ATTR]}")
            return
        duration = trial.duration.total_seconds() if trial.duration else 0.0
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        reason = f" ({trial.user_attrs[FAIL_REASON_ATTR]})" if FAIL_REASON_ATTR in trial.user_attrs else ""
        click.echo(f"Trial {trial.number} {trial.state.name}{reason}: value {value} in {duration:.1f}s {trial.params}")
        if RUN_ID_ATTR in trial.user_attrs:
            set_tags(self.client, trial.user_attrs[RUN_ID_ATTR], {
                "trial_state": trial.state.name,
                "mlflow.note.content": trial_description(trial, study.study_name, self.metric),
            })  # fmt: skip
        set_description(self.client, self.parent_run_id, parent_description(study, self.metric, self.trials))
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
