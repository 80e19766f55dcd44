"""Ctrl-C and kills in a sweep: real signals (SIGINT as a person presses it, SIGKILL) to real processes."""

import signal
import subprocess
import sys
import time

from conftest import REPO
from mlflow import MlflowClient
from optuna.trial import TrialState
from test_sweep import SPACE, children_of, study_at, sweep, write_space


def _training(folder) -> bool:
    try:
        trials = study_at(folder).get_trials()
    except (KeyError, FileNotFoundError):  # the study is not made yet
        return False
    return any(t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs for t in trials)


def test_ctrl_c_closes_the_trial_and_the_parent_and_the_same_command_resumes(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 4"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "3"]
    command += ["--data", str(verdict), "--tracking-uri", store]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _training(tmp_path):  # wait until the first trial trains
        time.sleep(0.5)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "Interrupted" in output

    study = study_at(tmp_path)
    interrupted = study.get_trials()[-1]
    assert interrupted.state == TrialState.FAIL
    client = MlflowClient(store)
    assert client.get_run(interrupted.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    assert client.get_run(parent_id).info.status == "KILLED"

    assert sweep(space, store, verdict, "--trials", "1") == 0  # the same study, the same parent
    assert client.get_run(parent_id).info.status == "FINISHED"
    statuses = {run.info.status for run in children_of(client, parent_id)}
    assert "RUNNING" not in statuses and "KILLED" in statuses


def start_and_kill_mid_trial(command: list[str], folder, is_training) -> None:
    """Start ``command``, wait until a trial trains, then SIGKILL it: no handler runs, nothing is closed."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not is_training():
        time.sleep(0.3)
    assert is_training(), "no trial started training"
    process.kill()
    process.wait(timeout=30)


def check_killed_trial_was_retried(study, client: MlflowClient, trials: int) -> None:
    (killed,) = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert client.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "FAILED"
    (retry,) = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == trials
    children = children_of(client, study.user_attrs["mlflow_parent_run_id"])
    assert len(children) == len(study.get_trials()) and "RUNNING" not in {r.info.status for r in children}


def test_a_killed_worker_is_found_dead_and_the_same_command_finishes_the_study(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "2"]
    command += ["--data", str(verdict), "--tracking-uri", store, "--heartbeat", "2"]
    start_and_kill_mid_trial(command, tmp_path, lambda: _training(tmp_path))

    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    check_killed_trial_was_retried(study_at(tmp_path), MlflowClient(store), trials=2)
