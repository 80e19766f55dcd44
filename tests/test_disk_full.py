"""A full disk: one line and status 1, every run closed, nothing half-written, the same command resumes.

The end-to-end tests put the MLflow store and its artifacts on a tmpfs of a few MB the test mounts
itself (root, or CAP_SYS_ADMIN), and grow it with a remount to free space.
"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import TINY_BASE, study_at, sweep, write_space

import runner
from gpt.checkpoint import load_checkpoint
from gpt.disk_space import OutOfSpace, is_out_of_space, writing
from sweeps import JOURNAL_NAME
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from tracking.training import CHECKPOINT_FILE


def test_a_full_disk_is_recognised_however_a_library_says_it():
    assert is_out_of_space(OSError(errno.ENOSPC, "No space left on device"))
    assert is_out_of_space(sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0") from inner
    except RuntimeError as outer:
        assert is_out_of_space(outer)
    assert not is_out_of_space(OSError(errno.EACCES, "Permission denied"))
    assert not is_out_of_space(ValueError("bad value"))


def test_writing_names_what_where_and_how_much(tmp_path):
    with pytest.raises(OutOfSpace) as caught, writing("the checkpoint", tmp_path, needed=19_300_000):
        raise OSError(errno.ENOSPC, "No space left on device")
    said = str(caught.value)
    assert said.startswith(f"out of disk space writing the checkpoint to {tmp_path} (it needs about 19.3 MB, ")
    assert "free there); free some, then rerun the same command" in said
    with pytest.raises(PermissionError), writing("the checkpoint", tmp_path):
        raise PermissionError(errno.EACCES, "Permission denied")  # not a full disk: passed on as it is


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of ``size`` at tmp_path/disk; ``grow(size)`` remounts it larger, as freeing space would."""
    disk = tmp_path / "disk"
    disk.mkdir()

    def mount(size: str, *options: str) -> None:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([*options, f"size={size}"]), "tmpfs", str(disk)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")

    yield disk, mount, lambda size: mount(size, "remount")
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


TINY_SINGLE = ["--emb-dim", "16", "--n-heads", "2", "--n-layers", "1", "--max-length", "32", "--batch-size", "4",
               "--no-system-metrics", "--device", "cpu"]  # fmt: skip


@pytest.mark.slow
def test_single_out_of_space_at_a_checkpoint_is_one_line_a_failed_run_and_resumes(
    small_disk, tmp_path, verdict, capsys, monkeypatch
):
    disk, mount, grow = small_disk
    mount("26m")  # the store and one checkpoint of the 1.6M-parameter model (19 MB), not a second beside it
    monkeypatch.chdir(disk)  # MLflow puts the artifacts in ./mlruns
    store = f"sqlite:///{disk / 'mlflow.db'}"
    args = ["--data", str(verdict), "--tracking-uri", store, "--output-dir", str(tmp_path / "out")]
    code = runner.main(["single", *TINY_SINGLE, *args, "--max-steps", "6", "--checkpoint-every", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("Error: out of disk space writing the checkpoint to "), err
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("gpt-from-scratch").experiment_id])
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("OutOfSpace: out of disk space")
    assert f"single --resume {run.info.run_id}" in err
    kept = Path(run.info.artifact_uri.removeprefix("file://")) / CHECKPOINT_FILE
    assert load_checkpoint(kept)["step"] == 2  # the last good one, whole
    assert not list(kept.parent.glob(".*.tmp"))  # and nothing half-written beside it

    grow("64m")
    assert runner.main(["single", "--resume", run.info.run_id, "--tracking-uri", store]) == 0
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED" and load_checkpoint(kept)["step"] == 5


@pytest.mark.slow
def test_a_sweep_out_of_space_fails_its_trial_queues_its_point_closes_its_runs_and_resumes(
    small_disk, tmp_path, verdict, capsys, monkeypatch
):
    disk, mount, grow = small_disk
    mount("4m")  # the store fits, a trial's 6 MB checkpoint does not
    monkeypatch.chdir(disk)
    store = f"sqlite:///{disk / 'mlflow.db'}"
    space = write_space(tmp_path, TINY_BASE + "params:\n  max_length: {type: categorical, choices: [16, 32]}\n")
    journal = str(tmp_path / JOURNAL_NAME)  # the study beside, on the big disk; the MLflow store fills up
    assert sweep(space, store, verdict, "--trials", "2", "--storage", journal, "--no-system-metrics") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("Error: out of disk space writing the checkpoint"), err
    study, client = study_at(tmp_path), MlflowClient(store)
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    (waiting,) = study.get_trials(states=(TrialState.WAITING,))
    assert waiting.params == failed.params  # its point, queued again
    assert client.get_run(failed.user_attrs[RUN_ID_ATTR]).info.status == "FAILED"
    assert client.get_run(study.user_attrs[PARENT_RUN_ATTR]).info.status == "FAILED"

    grow("64m")
    assert sweep(space, store, verdict, "--trials", "2", "--storage", journal, "--no-system-metrics") == 0
    study = study_at(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2
    assert client.get_run(study.user_attrs[PARENT_RUN_ATTR]).info.status == "FINISHED"
