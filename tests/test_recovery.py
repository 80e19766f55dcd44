"""Stale-trial detection on the journal file, with real processes: a dead worker's trial is failed and
queued again, a live worker's is left alone."""

import socket
import subprocess
import sys
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.recovery import WORKER_ATTR, stale_trial_callback, this_worker
from sweeps.storage import open_storage
from sweeps.study_runs import RUN_ID_ATTR
from tracking.store import connect, experiment_id


def dead_worker() -> str:
    """The "host:pid" of a process of this machine that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def fail_stale_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_dead_workers_trial_is_failed_with_its_run_and_retried_and_a_live_ones_is_not(tmp_path, store):
    client = connect(store)
    run_id = client.create_run(experiment_id(client, "recovery")).info.run_id
    storage = open_storage(str(tmp_path / "journal.log"), heartbeat_s=60, on_stale=stale_trial_callback(store))
    study = optuna.create_study(storage=storage)
    alive, dead = study.ask(), study.ask()
    alive.set_user_attr(WORKER_ATTR, this_worker())
    dead.set_user_attr(WORKER_ATTR, dead_worker())
    dead.set_user_attr(RUN_ID_ATTR, run_id)
    dead.suggest_int("n_layers", 1, 4)

    fail_stale_trials(study)  # long before 3 missed beats of 60 s: the dead process alone gives it away
    states = {t.number: t.state for t in study.get_trials()}
    assert states[alive.number] == TrialState.RUNNING and states[dead.number] == TrialState.FAIL
    assert client.get_run(run_id).info.status == "FAILED"
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params
