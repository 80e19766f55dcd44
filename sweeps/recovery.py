"""Trials whose worker died: recognised as stale, failed together with their MLflow run, and run again.

On PostgreSQL (or any RDB) Optuna's own heartbeat does the recognising; the journal file,
the local default, gets the same protocol from ``sweeps.journal_heartbeat``. A trial is
stale when its worker has been silent for ``GRACE_BEATS`` beats or, on this machine,
when the worker's process is gone.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from sweeps import GRACE_BEATS
from sweeps.optuna_internals import experimental_features
from sweeps.study_runs import fail_lost_trial_run
from tracking.processes import ProcessId

MAX_RETRIES = 3
WORKER_ATTR = "worker"  # "host:pid:started" of the process running the trial

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


def this_worker() -> str:
    """This process as a trial's ``worker`` attribute records it: ``host:pid:started``."""
    return str(ProcessId.this_process())


def worker_is_dead_here(worker: str | None) -> bool:
    """True only for a worker of this machine whose process is gone; other machines' workers are unknown."""
    process = ProcessId.parse(worker)
    return process is not None and process.is_gone() is True


def stale_trial_callback(tracking_uri: str) -> StaleCallback:
    """Mark the dead trial's MLflow run FAILED, then queue the trial's params again (at most MAX_RETRIES)."""
    with experimental_features():
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)

    def on_stale(study: optuna.Study, trial: FrozenTrial) -> None:
        fail_lost_trial_run(trial, tracking_uri)
        retry(study, trial)

    return on_stale


def heartbeat_options(heartbeat_s: int, on_stale: StaleCallback | None) -> dict:
    """``RDBStorage`` keywords that turn Optuna's heartbeat on; the grace period is ``GRACE_BEATS`` beats."""
    return {
        "heartbeat_interval": heartbeat_s,
        "grace_period": GRACE_BEATS * heartbeat_s,
        "heartbeat_stale_trial_callback": on_stale,
    }
