"""The private names of Optuna and MLflow the project relies on still exist: a release that removes one
fails here, by name, before a sweep or a run fails somewhere far from the cause."""

from __future__ import annotations

import inspect

import optuna
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from optuna.storages import RDBStorage, RetryFailedTrialCallback

from sweeps import optuna_internals
from tracking import mlflow_internals


def test_optuna_has_every_private_name_the_sweeps_use():
    missing = [name for name in optuna_internals.RDB_PRIVATE_CALLS if not hasattr(RDBStorage, name)]
    assert not missing, f"RDBStorage lost {missing}: see sweeps/optuna_internals.py"
    assert hasattr(optuna_internals.BaseHeartbeat, optuna_internals.STALE_TRIAL_IDS_HOOK)


def test_optuna_still_keeps_queued_values_and_retries_where_the_sweeps_read_them():
    study = optuna.create_study()
    study.enqueue_trial({"x": 3.0})
    (waiting,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert optuna_internals.queued_params(waiting) == {"x": 3.0}
    assert optuna_internals.storage_trial_id(waiting) == waiting._trial_id
    retried = optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, system_attrs={optuna_internals.FAILED_TRIAL_ATTR: 7}
    )
    with optuna_internals.experimental_features():
        assert RetryFailedTrialCallback.retried_trial_number(retried) == 7


def test_optuna_still_lets_a_sampler_read_every_trial_through_a_hyperband_bracket():
    class Recording(optuna.samplers.RandomSampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            self.seen = study  # what Optuna hands a sampler

    sampler = Recording(seed=0)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(sampler=sampler, pruner=pruner)
    for n in range(12):
        trial = study.ask()
        trial.report(float(n), step=1)
        trial.should_prune()  # the pruner makes its brackets on its first call
        study.tell(trial, float(n))
    study.ask()
    assert len(sampler.seen.get_trials()) < 13  # its bracket's only: why the sweeps need the private read
    assert len(optuna_internals.all_trials(sampler.seen)) == 13


def test_mlflow_has_every_internal_the_tracking_uses():
    for name in ("start", "finish", "collect_metrics", "aggregate_metrics", "publish_metrics"):
        assert callable(getattr(SystemMetricsMonitor, name, None)), f"SystemMetricsMonitor lost {name}"
    assert "mlflow_logger" in inspect.getsource(SystemMetricsMonitor.__init__)
    assert callable(mlflow_internals._use_tracking_uri)
    assert callable(mlflow_internals.get_artifact_repository)
