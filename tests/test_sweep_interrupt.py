"""Ctrl-C and kills in a sweep: real signals (SIGINT as a person presses it, SIGKILL) to real processes."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
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
    wait_until,
    write_space,
)

from sweeps.recovery import WORKER_ATTR
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from tracking.processes import ProcessId

pytestmark = [pytest.mark.slow, pytest.mark.serial]  # stop signals to sweeps and their workers


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_closes_the_trial_and_the_parent_queues_the_point_and_the_same_command_resumes(
    stop, status, tmp_path, store, verdict
):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 4"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "2"]
    command += ["--confirm", "0", "--data", str(verdict), "--tracking-uri", store]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait_until(lambda: trial_is_training(tmp_path, reported=True)):  # mid-training
        process.kill()
        pytest.fail(f"no trial reached its first report: {process.communicate()[0]}")
    process.send_signal(stop)  # SIGINT as a person's Ctrl-C, SIGTERM as a scheduler's or `kill PID`
    output, _ = process.communicate(timeout=120)
    assert process.returncode == status, output
    assert "Traceback" not in output and f"Stopped by {stop.name}" in output

    study = study_at(tmp_path)
    (interrupted,) = study.get_trials(states=(TrialState.FAIL,))
    (queued,) = study.get_trials(states=(TrialState.WAITING,))
    assert queued.params == interrupted.params and queued.system_attrs["failed_trial"] == interrupted.number
    client = MlflowClient(store)
    run = client.get_run(interrupted.user_attrs[RUN_ID_ATTR])
    assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == stop.name
    parent_id = study.user_attrs[PARENT_RUN_ATTR]
    assert client.get_run(parent_id).info.status == "KILLED"

    assert sweep(space, store, verdict, "--trials", "2") == 0  # the same study, the same parent
    assert client.get_run(parent_id).info.status == "FINISHED"
    study = study_at(tmp_path)
    assert study.get_trials()[queued.number].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2
    statuses = {run.info.status for run in children_of(client, parent_id)}
    assert "RUNNING" not in statuses and "KILLED" in statuses


def test_a_killed_worker_is_found_dead_and_the_same_command_finishes_the_study(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "2"]
    command += ["--confirm", "0", "--data", str(verdict), "--tracking-uri", store, "--heartbeat", "2"]
    start_and_kill_mid_trial(command, tmp_path, lambda: trial_is_training(tmp_path))

    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    check_killed_trial_was_retried(study_at(tmp_path), MlflowClient(store), trials=2)


def running_workers(folder) -> list[int]:
    """The process ids of the workers whose trials are running, from the study."""
    try:
        trials = study_at(folder).get_trials(states=(TrialState.RUNNING,))
    except (KeyError, FileNotFoundError):
        return []
    return [ProcessId.parse(t.user_attrs[WORKER_ATTR]).pid for t in trials if RUN_ID_ATTR in t.user_attrs]


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("parent_dies", [False, True], ids=["sigterm-to-the-sweep", "sigkill-to-the-sweep"])
def test_workers_stop_with_their_sweep_and_the_same_command_finishes(parent_dies, tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 6"))
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "2"]
    command += ["--confirm", "0", "--data", str(verdict), "--tracking-uri", store, "--workers", "2"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert wait_until(lambda: len(running_workers(tmp_path)) == 2), "the two workers never trained at once"
    workers = running_workers(tmp_path)
    if parent_dies:  # no handler runs in the sweep's own process: the workers must notice by themselves
        process.kill()
    else:
        process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == (-signal.SIGKILL if parent_dies else 143), output
    assert wait_until(lambda: all(gone(pid) for pid in workers), seconds=30), "a worker outlived its sweep"

    study, client = study_at(tmp_path), MlflowClient(store)
    stopped = study.get_trials(states=(TrialState.FAIL,))
    assert len(stopped) == 2 and len(study.get_trials(states=(TrialState.WAITING,))) == 2
    for trial in stopped:
        run = client.get_run(trial.user_attrs[RUN_ID_ATTR])
        assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "SIGTERM"
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    study = study_at(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2
    runs = children_of(client, study.user_attrs[PARENT_RUN_ATTR])
    assert "RUNNING" not in {run.info.status for run in runs}
