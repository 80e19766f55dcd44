"""The multi-machine path: several workers share one study in a real PostgreSQL server on loopback."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from test_sweep import SPACE, children_of, sweep, write_space

import runner

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


def test_workers_share_a_postgres_study_and_best_reads_it(postgres_url, tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "3", "--workers", "2", "--storage", postgres_url) == 0
    study = optuna.load_study(study_name="sweep-tiny", storage=postgres_url)
    assert 3 <= len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) <= 4
    children = children_of(MlflowClient(store), study.user_attrs["mlflow_parent_run_id"])
    assert len(children) == len(study.get_trials())
    assert not (tmp_path / "optuna-journal.log").exists()
    capsys.readouterr()
    assert runner.main(["best", "--study", "sweep-tiny", "--storage", postgres_url]) == 0
    assert f"#{study.best_trial.number}" in capsys.readouterr().out


def test_an_unreachable_storage_server_is_one_line(tmp_path, store, verdict, capsys):
    started = time.monotonic()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/postgres"
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--storage", url) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the Optuna storage postgresql://postgres:***@127.0.0.1" in err
    assert "hunter2" not in err and time.monotonic() - started < 60
    assert MlflowClient(store).search_runs(["0"]) == []
