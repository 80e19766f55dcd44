"""Ctrl-C in a sweep, as a person would press it: a real SIGINT to a real `runner.py sweep` process."""

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
