"""The multi-machine path: several workers share one study in a real PostgreSQL server on loopback."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psycopg
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import (
    REPO,
    SPACE,
    check_killed_trial_was_retried,
    children_of,
    server_answers,
    start_and_kill_mid_trial,
    sweep,
    wait_until,
    write_space,
)

import runner
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from tracking.ui import stop_group

pytestmark = pytest.mark.slow  # end to end: sweeps, servers or several processes

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*command: str) -> list[str]:
    return command if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway cluster in a temp folder, trusted on 127.0.0.1 only, removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN} (set PG_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="gpt-pg-"))
    folder.chmod(0o777)
    data, port = folder / "data", _free_port()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    subprocess.run(
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unreachable_storage_server_is_one_line(tmp_path, store, verdict, capsys):
    started = time.monotonic()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/postgres"
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--storage", url) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the Optuna storage postgresql://postgres:***@127.0.0.1" in err
    assert "hunter2" not in err and time.monotonic() - started < 60
    assert MlflowClient(store).search_runs(["0"]) == []


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def runner_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "runner.py"), *args]


def test_a_killed_worker_goes_stale_by_heartbeat_and_the_rerun_finishes(postgres_url, tmp_path, store, verdict):
    storage = create_database(postgres_url, "heartbeat")
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"))
    command = runner_command("sweep", "--space", str(space), "--trials", "2", "--confirm", "0", "--data", str(verdict))
    command += ["--tracking-uri", store, "--storage", storage, "--heartbeat", "1"]

    def training() -> bool:
        try:
            trials = optuna.load_study(study_name="sweep-tiny", storage=storage).get_trials()
        except KeyError:
            return False
        return any(t.state == TrialState.RUNNING and RUN_ID_ATTR in t.user_attrs for t in trials)

    start_and_kill_mid_trial(command, tmp_path, training)
    time.sleep(4)  # longer than 3 missed beats: stale by heartbeat alone
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    study = optuna.load_study(study_name="sweep-tiny", storage=storage)
    check_killed_trial_was_retried(study, MlflowClient(store), trials=2)


@pytest.fixture
def mlflow_server(postgres_url, tmp_path):
    """``mlflow server`` on loopback, its runs in PostgreSQL and its artifacts served from a temp folder."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", create_database(postgres_url, "tracking"),
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # browsing and logging only
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


def test_machines_and_workers_share_one_study_run_exactly_n_and_never_repeat_a_point(
    postgres_url, mlflow_server, tmp_path, verdict, capsys
):
    storage = create_database(postgres_url, "machines")
    space = write_space(tmp_path, SPACE)

    def command(trials: int) -> list[str]:
        return runner_command("sweep", "--space", str(space), "--trials", str(trials), "--confirm", "0",
                              "--data", str(verdict), "--storage", storage,
                              "--tracking-uri", mlflow_server)  # fmt: skip

    machines = []
    # Separate processes, separate working folders, nothing shared locally; one machine runs two workers.
    for name, extra in (("machine-a", ["--workers", "2"]), ("machine-b", [])):
        (tmp_path / name).mkdir()
        machines.append(
            subprocess.Popen(
                command(6) + extra, cwd=tmp_path / name, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    for machine in machines:
        output, _ = machine.communicate(timeout=600)
        assert machine.returncode == 0, output
        # As quiet as with a SQLite store: no MLflow links per trial, no Optuna heartbeat warning.
        assert "View run" not in output and "ExperimentalWarning" not in output, output

    study = optuna.load_study(study_name="sweep-tiny", storage=storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    with capsys.disabled():  # shown under pytest -s
        print(f"two machines, three workers: {len(finished)} finished trials, {len(study.get_trials())} in all")
    assert len(finished) == 6
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 6
    client = MlflowClient(mlflow_server)
    parents = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.optuna_study = 'sweep-tiny'"
    )
    parents = [run for run in parents if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.run_id for run in parents] == [study.user_attrs[PARENT_RUN_ATTR]]
    children = children_of(client, parents[0].info.run_id)
    assert sorted(int(run.data.tags["trial_number"]) for run in children) == sorted(t.number for t in finished)
    assert {run.info.status for run in children} == {"FINISHED"}

    # What a person sees, read through the server's REST API as its UI reads it.
    experiment = client.get_experiment(parents[0].info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert parents[0].data.tags["mlflow.note.content"].startswith("**Sweep** `sweep-tiny`")
    for run in children:
        assert run.data.tags["mlflow.note.content"].startswith("**Trial ")
        assert run.data.tags["mlflow.source.name"] == "runner.py" and "mlflow.user" in run.data.tags
        assert "best_val_loss" in run.data.metrics  # pruned trials too: the best before pruning
        assert "system/cpu_utilization_percentage" in run.data.metrics
    best_run = client.get_run(study.best_trial.user_attrs[RUN_ID_ATTR])
    assert best_run.outputs.model_outputs  # the registered best model (once per machine that saw it best)
    for model_output in best_run.outputs.model_outputs:
        linked = {m.key: m.value for m in client.get_logged_model(model_output.model_id).metrics}
        assert linked["val_loss"] == pytest.approx(best_run.data.metrics["best_val_loss"])  # the best step's

    resumed = subprocess.run(command(8), cwd=tmp_path / "machine-b", capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout
    finished = optuna.load_study(study_name="sweep-tiny", storage=storage).get_trials(
        states=(TrialState.COMPLETE, TrialState.PRUNED)
    )
    assert len(finished) == 8 and len({tuple(sorted(t.params.items())) for t in finished}) == 8

    capsys.readouterr()
    assert runner.main(["best", "--study", "sweep-tiny", "--storage", storage]) == 0
    assert (
        f"#{optuna.load_study(study_name='sweep-tiny', storage=storage).best_trial.number}" in capsys.readouterr().out
    )
