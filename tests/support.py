"""What several test modules share: the offline paths, a tiny search space, running a sweep
and reading back its study and runs, and killing a sweep mid-trial."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from mlflow import MlflowClient
from optuna.trial import TrialState

import runner
from gpt.training import TrainingCallback
from sweeps import JOURNAL_NAME
from sweeps.storage import open_storage
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from tracking.ui import stop_group

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GPT_SHARED_DIR", REPO.parent / "shared"))
VERDICT = SHARED / "data" / "the-verdict.txt"

TINY_BASE = """
base:
  mode: quick
  overrides: {num_epochs: 1, emb_dim: 16, n_heads: 2, n_layers: 1, batch_size: 8}
"""

SPACE = (
    TINY_BASE
    + """
params:
  learning_rate: {type: float, low: 1.0e-5, high: 3.0e-2, log: true}
  max_length: {type: categorical, choices: [16, 32]}
  drop_rate: {type: float, low: 0.0, high: 0.2}
pruner: median
seed: 3
"""
)


def wait_until(condition: Callable[[], object], seconds: float = 120, every: float = 0.2) -> bool:
    """Poll ``condition`` until it holds (True) or ``seconds`` pass (False): tests wait for an event, not a time."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def server_answers(url: str) -> bool:
    """An HTTP server at ``url`` answers its health check."""
    try:
        urllib.request.urlopen(f"{url}/health", timeout=2).close()
    except urllib.error.HTTPError:
        return True  # it answered, if only to ask for a login
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def tracking_server(backend: str, artifacts: Path, *extra: str, env: dict | None = None) -> Iterator[str]:
    """``mlflow server`` on loopback for the ``backend`` store, serving artifacts from ``artifacts``; its URL.

    ``extra``: more arguments, such as ``--app-name basic-auth``; ``env``: more environment variables.
    """
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--artifacts-destination",
         str(artifacts), "--host", "127.0.0.1", "--port", str(port), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},  # browsing and logging only
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        assert (
            wait_until(lambda: server_answers(url) or server.poll() is not None, 90, every=0.5)
            and server.poll() is None
        ), "mlflow server did not start"
        yield url
    finally:
        stop_group(server)  # the server and the helper processes it starts


def write_space(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def sweep(space: Path, store: str, verdict: Path, *args: str) -> int:
    """A sweep on the tiny space; no confirmations unless ``args`` ask for them (the last --confirm wins)."""
    fixed = ["--space", str(space), "--data", str(verdict), "--tracking-uri", store, "--log-every", "5"]
    fixed += ["--confirm", "0"]
    return runner.main(["sweep", *fixed, *args])


def children_of(client: MlflowClient, parent_id: str):
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.mlflow.parentRunId = '{parent_id}'", max_results=1000)


def study_at(tmp_path: Path, name: str = "sweep-tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(tmp_path / JOURNAL_NAME)))


def points(study: optuna.Study) -> list[tuple]:
    """The sampled points of the trials that ran, in trial order."""
    return [tuple(sorted(t.params.items())) for t in study.get_trials() if RUN_ID_ATTR in t.user_attrs]


def trial_is_training(folder: Path, reported: bool = False) -> bool:
    """A trial of the journal in ``folder`` has its MLflow run (and, with ``reported``, has reported
    a value to Optuna: it is between two evaluations)."""
    try:
        trials = study_at(folder).get_trials()
    except (KeyError, FileNotFoundError):  # the study is not made yet
        return False
    return any(
        t.state == TrialState.RUNNING and RUN_ID_ATTR in t.user_attrs and (t.intermediate_values or not reported)
        for t in trials
    )


def start_and_kill_mid_trial(command: list[str], folder, is_training) -> None:
    """Start ``command``, wait until a trial trains, then SIGKILL it: no handler runs, nothing is closed."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until(is_training), "no trial started training"
    process.kill()
    process.wait(timeout=30)


def check_killed_trial_was_retried(study, client: MlflowClient, trials: int) -> None:
    (killed,) = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert client.get_run(killed.user_attrs[RUN_ID_ATTR]).info.status == "FAILED"
    (retry,) = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == trials
    children = children_of(client, study.user_attrs[PARENT_RUN_ATTR])
    assert len(children) == len(study.get_trials()) and "RUNNING" not in {r.info.status for r in children}


def start_until_checkpointed(command: list[str], folder: Path, store: str) -> tuple[subprocess.Popen, str]:
    """Start a `single` command and wait until its run has a periodic checkpoint; the process and run id."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    run_id = next(line.split()[2] for line in process.stdout if line.startswith("MLflow run "))
    client = MlflowClient(store)
    checkpointed = wait_until(lambda: "checkpoint" in client.get_run(run_id).data.tags, every=0.05)
    assert checkpointed, "no periodic checkpoint was written"
    return process, run_id


class StopAt(TrainingCallback):
    """Raises ``error`` at training step ``step``: a Ctrl-C (KeyboardInterrupt) or a crash, on cue."""

    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error

    def on_batch(self, step: int, loss: float) -> None:
        if step == self.step:
            raise self.error
