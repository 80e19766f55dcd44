"""Where Optuna meets MLflow: the attributes that link a study and its trials to MLflow runs,
the study's parent run, the best trial's run and its registered model, and which trials keep
their checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.trial import FrozenTrial

from gpt.errors import UserError
from sweeps.pareto import dominates
from sweeps.ranking import (
    BEST_LOSS,
    Pick,
    best_result,
    best_trial,
    confirmed_front,
    final_order,
    front_trials,
    loss_of,
    maximizing,
    objectives_of,
    ranked_trials,
)
from sweeps.trial_states import WARM_START_ATTR
from tracking.runs import context_tags, create_run, log_metrics, log_params, set_tags
from tracking.training import delete_checkpoint

RUN_ID_ATTR = "mlflow_run_id"  # trial user attribute: the trial's MLflow run
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attribute: the sweep's MLflow parent run
PARENT_WAIT_S = 60.0


def child_run_tags(parent_run_id: str, study_name: str, **more: str) -> dict[str, str]:
    """The tags of a run under the sweep's parent run (a trial's, a confirmation's): MLflow nests it there."""
    return {"mlflow.parentRunId": parent_run_id, "optuna_study": study_name, **more}


def best_run_id(study: optuna.Study, pick: Pick = BEST_LOSS) -> str:
    """The MLflow run of the best configuration's own trial (by its mean over seeds once confirmed), by
    ``pick``."""
    trial = best_trial(study, pick)
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if not run_id:
        raise UserError(f"the best trial (#{trial.number}) of {study.study_name!r} has no MLflow run")
    return run_id


def parent_run_of(study: optuna.Study, client: MlflowClient) -> str:
    """The study's parent run, checked to be in this tracking store."""
    run_id = study.user_attrs[PARENT_RUN_ATTR]
    try:
        client.get_run(run_id)
    except MlflowException:
        raise UserError(
            f"study {study.study_name!r} logs to MLflow run {run_id}, which this tracking store does not hold; "
            "pass the --tracking-uri the study was started with"
        ) from None
    return run_id


def create_parent_run(
    study: optuna.Study, client: MlflowClient, experiment: str, params: dict[str, Any], space_file: Path
) -> str:
    """Make the study's MLflow parent run; only the process whose ``create_study`` made the study calls
    this, so machines starting at once agree on one parent without sleeping on a race."""
    tags = {**context_tags(), "optuna_study": study.study_name}
    run_id = create_run(client, experiment, study.study_name, tags)
    client.log_artifact(run_id, str(space_file))
    log_params(client, run_id, params)
    client.set_terminated(run_id, "FINISHED")
    study.set_user_attr(PARENT_RUN_ATTR, run_id)
    return run_id


def wait_for_parent_run(study: optuna.Study, client: MlflowClient) -> str | None:
    """The parent run another process is making for a study it just created, once it is recorded.

    None if none appears in ``PARENT_WAIT_S`` seconds (its creator died first).
    """
    deadline = time.monotonic() + PARENT_WAIT_S
    while PARENT_RUN_ATTR not in study.user_attrs:  # each read goes to the storage
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    return parent_run_of(study, client)


def fail_lost_trial_run(trial: FrozenTrial, tracking_uri: str) -> None:
    """End the MLflow run of a trial whose worker was lost: FAILED, with why; the trial is retried."""
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if not run_id:
        return
    client = MlflowClient(tracking_uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, "error", "its worker stopped answering (killed or lost); the trial is retried")
        client.set_terminated(run_id, "FAILED")


def ranks_in_top(study: optuna.Study, values: Sequence[float], keep: int) -> bool:
    """Would a trial with ``values`` be among the best ``keep`` complete trials (with several objectives:
    on the front, whatever ``keep``, since ``best --max`` may pick any member)?"""
    if keep <= 0:
        return False
    if len(values) > 1:
        objectives = objectives_of(study)
        return not any(dominates(t.values, values, objectives) for t in front_trials(study))
    value = values[0]
    ranked = ranked_trials(study)
    if len(ranked) < keep:
        return True
    worst_kept = loss_of(ranked[keep - 1])
    return value > worst_kept if maximizing(study) else value < worst_kept


def remove_dropped_checkpoints(study: optuna.Study, client: MlflowClient, keep: int) -> list[int]:
    """Delete the checkpoints of complete trials outside the best ``keep`` (by their mean over seeds once
    confirmed; with several objectives, off the front by their own values and by their means); return their
    numbers. A trial a warm start brought in keeps its checkpoint: its run is the earlier study's, which
    decides for its own runs."""
    removed = []
    dropped = final_order(study)[keep:]
    if len(study.directions) > 1 and keep > 0:
        kept = {t.number for t in front_trials(study)} | {r.trial.number for r in confirmed_front(study)}
        dropped = [t for t in final_order(study) if t.number not in kept]
    for trial in dropped:
        if WARM_START_ATTR in trial.user_attrs:
            continue
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id and delete_checkpoint(client, run_id, "not among the best trials"):
            removed.append(trial.number)
    return removed


def log_best_on_parent(study: optuna.Study, client: MlflowClient, parent_run_id: str, metric: str) -> None:
    """The best configuration on the sweep's parent run: its trial, params, and mean over seeds."""
    try:
        best = best_result(study)
    except UserError:  # no complete trial
        return
    set_tags(client, parent_run_id, {
        "best_trial": best.trial.number,
        "best_seeds": best.seeds,
        "best_summary": best.describe(metric),
        **{f"best.{k}": v for k, v in best.trial.params.items()},
    })  # fmt: skip
    log_metrics(client, parent_run_id, best.trial.number, {"best_mean": best.mean, "best_std": best.std})
