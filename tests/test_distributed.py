"""One model on two processes: `torchrun` starts them, gloo joins them on the CPU."""

import subprocess
import sys

import pytest
from mlflow import MlflowClient
from support import REPO

from gpt.checkpoint import load_checkpoint

TINY = ["--precision", "fp32", "--drop-rate", "0", "--emb-dim", "32", "--n-heads", "2", "--n-layers", "1",
        "--max-length", "32", "--batch-size", "8", "--max-steps", "30", "--eval-freq", "10", "--device", "cpu",
        "--no-system-metrics"]  # fmt: skip
# Two processes add their halves' gradients in another order than one process sums the batch.
RELATIVE_TOLERANCE = 1e-5


def single(store: str, verdict, folder, *launcher: str) -> subprocess.CompletedProcess:
    command = [*launcher, str(REPO / "runner.py"), "single", "--data", str(verdict), "--tracking-uri", store, *TINY]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)


def the_run(store: str):
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return client, run


def test_two_gloo_processes_train_one_run_with_the_losses_of_one_process(verdict, tmp_path):
    two = f"sqlite:///{tmp_path / 'two.db'}"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = single(two, verdict, tmp_path, *torchrun)
    assert result.returncode == 0, result.stdout + result.stderr
    client, run = the_run(two)  # rank 0 alone made and logged a run
    assert run.info.status == "FINISHED" and run.data.params["world_size"] == "2"
    assert "on 2 processes" in run.data.tags["mlflow.note.content"]
    assert result.stdout.count("MLflow run ") == 2  # "started" and the closing line, from rank 0 only
    history = load_checkpoint(client.download_artifacts(run.info.run_id, "checkpoint/model.pt"))["history"]
    assert [step for step, _ in history["batch_losses"]] == list(range(30))

    one = f"sqlite:///{tmp_path / 'one.db'}"
    assert single(one, verdict, tmp_path, sys.executable).returncode == 0
    one_client, one_run = the_run(one)
    assert one_run.data.params["world_size"] == "1"
    expected = load_checkpoint(one_client.download_artifacts(one_run.info.run_id, "checkpoint/model.pt"))["history"]
    assert [loss for _, loss in history["batch_losses"]] == pytest.approx(
        [loss for _, loss in expected["batch_losses"]], rel=RELATIVE_TOLERANCE
    )
    assert history["evals"][-1]["val_loss"] == pytest.approx(expected["evals"][-1]["val_loss"], rel=RELATIVE_TOLERANCE)
