"""Keep the checkpoints of the best K trials of a study and delete the rest as they drop out."""

from __future__ import annotations

import optuna
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from optuna.trial import FrozenTrial, TrialState

from sweeps.tracking import CHECKPOINT_DIR, set_tags

RUN_ID_ATTR = "mlflow_run_id"


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(complete, key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)


def ranks_in_top(study: optuna.Study, value: float, keep: int) -> bool:
    """Would a trial with ``value`` be among the best ``keep`` complete trials?"""
    if keep <= 0:
        return False
    ranked = ranked_trials(study)
    if len(ranked) < keep:
        return True
    worst_kept = ranked[keep - 1].value
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return value > worst_kept if maximize else value < worst_kept


def remove_dropped_checkpoints(study: optuna.Study, client: MlflowClient, keep: int) -> list[int]:
    """Delete the checkpoints of complete trials outside the best ``keep``; return their numbers."""
    removed = []
    for trial in ranked_trials(study)[keep:]:
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if not run_id:
            continue
        run = client.get_run(run_id)
        if run.data.tags.get("checkpoint", "").startswith(CHECKPOINT_DIR + "/"):
            get_artifact_repository(run.info.artifact_uri).delete_artifacts(CHECKPOINT_DIR)
            set_tags(client, run_id, {"checkpoint": "removed: not among the best trials"})
            removed.append(trial.number)
    return removed
