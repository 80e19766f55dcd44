"""Bookkeeping after each trial, as Optuna study callbacks that get the finished ``FrozenTrial``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
import optuna
from optuna.trial import FrozenTrial

from gpt.interrupt import stop_if_signalled
from sweeps.objective import NOT_RUN_ATTR
from sweeps.sampling import FAIL_REASON_ATTR
from sweeps.study_runs import RUN_ID_ATTR, remove_dropped_checkpoints
from tracking.runs import log_metrics, set_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient


class TrialBookkeeper:
    """One line of progress; the trial's state on its run; the parent's best value; checkpoint clean-up."""

    def __init__(self, client: MlflowClient, parent_run_id: str, keep_checkpoints: int) -> None:
        self.client, self.parent_run_id, self.keep = client, parent_run_id, keep_checkpoints

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
            set_tags(self.client, trial.user_attrs[RUN_ID_ATTR], {"trial_state": trial.state.name})
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
