"""One model on two processes: `torchrun` starts them, gloo joins them on the CPU."""

import signal
import subprocess
import sys

import psutil
import pytest
from mlflow import MlflowClient
from support import REPO, start_until_checkpointed

from gpt.checkpoint import load_checkpoint
from tracking.training import CHECKPOINT_FILE

pytestmark = pytest.mark.slow  # end to end: sweeps, servers or several processes

TINY = ["--precision", "fp32", "--drop-rate", "0", "--emb-dim", "32", "--n-heads", "2", "--n-layers", "1",
        "--max-length", "32", "--batch-size", "8", "--max-steps", "30", "--eval-freq", "10", "--device", "cpu",
        "--no-system-metrics"]  # fmt: skip
# Two processes add their halves' gradients in another order than one process sums the batch.
RELATIVE_TOLERANCE = 1e-5


# Twice its base's width, half its depth: DDP must carry mup's multipliers and learning-rate groups too.
MUP = ["--parametrization", "mup", "--base-emb-dim", "16", "--base-n-heads", "2", "--base-n-layers", "2"]


def single(store: str, verdict, folder, *launcher: str, extra: list[str] = ()) -> subprocess.CompletedProcess:
    command = [*launcher, str(REPO / "runner.py"), "single", "--data", str(verdict), "--tracking-uri", store, *TINY]
    command += extra
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)


def the_run(store: str):
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


def test_two_gloo_processes_train_one_run_with_the_losses_of_one_process(verdict, tmp_path):
    two = f"sqlite:///{tmp_path / 'two.db'}"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = single(two, verdict, tmp_path, *torchrun, extra=MUP)
    assert result.returncode == 0, result.stdout + result.stderr
    client, run = the_run(two)  # rank 0 alone made and logged a run
    assert run.info.status == "FINISHED" and run.data.params["world_size"] == "2"
    assert "on 2 processes" in run.data.tags["mlflow.note.content"]
    assert result.stdout.count("MLflow run ") == 2  # "started" and the closing line, from rank 0 only
    history = load_checkpoint(client.download_artifacts(run.info.run_id, CHECKPOINT_FILE))["history"]
    assert [step for step, _ in history["batch_losses"]] == list(range(30))

    one = f"sqlite:///{tmp_path / 'one.db'}"
    assert single(one, verdict, tmp_path, sys.executable, extra=MUP).returncode == 0
    one_client, one_run = the_run(one)
    assert one_run.data.params["world_size"] == "1" and one_run.data.params["parametrization"] == "mup"
    expected = load_checkpoint(one_client.download_artifacts(one_run.info.run_id, CHECKPOINT_FILE))["history"]
    assert [loss for _, loss in history["batch_losses"]] == pytest.approx(
        [loss for _, loss in expected["batch_losses"]], rel=RELATIVE_TOLERANCE
    )
    assert history["evals"][-1]["val_loss"] == pytest.approx(expected["evals"][-1]["val_loss"], rel=RELATIVE_TOLERANCE)


@pytest.mark.serial
def test_a_two_process_run_killed_outright_resumes_under_torchrun(verdict, tmp_path):
    """SIGKILL to torchrun and both processes; `torchrun ... --resume RUN_ID` goes on from the last periodic
    checkpoint, and the losses are those of an uninterrupted two-process run."""
    args = [arg if arg != "30" else "120" for arg in TINY] + ["--checkpoint-every", "10"]  # --max-steps 120
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    command = [*torchrun, str(REPO / "runner.py"), "single", "--data", str(verdict), *args]
    finished = subprocess.run([*command, "--tracking-uri", whole], cwd=tmp_path, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr

    killed = f"sqlite:///{tmp_path / 'killed.db'}"
    process, run_id = start_until_checkpointed([*command, "--tracking-uri", killed], tmp_path, killed)
    client = MlflowClient(killed)
    job = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in job:  # torchrun and both of its processes (each in a session of its own), as a lost machine
        member.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    psutil.wait_procs(job, timeout=30)
    assert client.get_run(run_id).info.status == "RUNNING", "the run ended before it could be killed"

    resume = [*torchrun, str(REPO / "runner.py"), "single", "--resume", run_id, "--tracking-uri", killed]
    resumed = subprocess.run(resume, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "which is gone; resuming it" in resumed.stdout
    assert client.get_run(run_id).info.status == "FINISHED"
    history = load_checkpoint(client.download_artifacts(run_id, CHECKPOINT_FILE))["history"]
    whole_client, whole_run = the_run(whole)
    expected = load_checkpoint(whole_client.download_artifacts(whole_run.info.run_id, CHECKPOINT_FILE))
    assert [step for step, _ in history["batch_losses"]] == list(range(120))
    assert history["batch_losses"] == expected["history"]["batch_losses"]
