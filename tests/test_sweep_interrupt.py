"""Ctrl-C and kills in a sweep: real signals (SIGINT as a person presses it, SIGKILL) to real processes."""

import signal
import subprocess
import sys
import time

from mlflow import MlflowClient
from optuna.trial import TrialState
from support import (
    REPO,
    SPACE,
    check_killed_trial_was_retried,
    children_of,
    start_and_kill_mid_trial,
    study_at,
    sweep,
    trial_is_training,
    write_space,
)


def test_ctrl_c_closes_the_trial_and_the_parent_and_the_same_command_resumes(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 4"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "3"]
    command += ["--data", str(verdict), "--tracking-uri", store]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not trial_is_training(tmp_path, reported=True):  # mid-training
        time.sleep(0.2)
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


def test_a_killed_worker_is_found_dead_and_the_same_command_finishes_the_study(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "2"]
    command += ["--data", str(verdict), "--tracking-uri", store, "--heartbeat", "2"]
    start_and_kill_mid_trial(command, tmp_path, lambda: trial_is_training(tmp_path))

    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    check_killed_trial_was_retried(study_at(tmp_path), MlflowClient(store), trials=2)
