"""The multi-machine path: several workers share one study in a real PostgreSQL server on loopback."""

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
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
    free_port,
    start_and_kill_mid_trial,
    sweep,
    tracking_server,
    wait_until,
    write_space,
)

import runner
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR

pytestmark = pytest.mark.slow  # end to end: sweeps, servers or several processes

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(*command: str) -> list[str]:
    return command if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *command]


@dataclass(frozen=True)
class Cluster:
    """A throwaway PostgreSQL cluster on loopback that a test may stop and start again."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), *args),
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder}"
        self.pg_ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``, as a maintenance window or a managed database's upgrade does: sessions are cut off."""
        self.pg_ctl("-m", mode, "-w", "stop")

    def database(self, name: str) -> str:
        """A new database of the cluster, as a URL."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def postgres() -> Cluster:
    """A throwaway cluster in a temp folder, trusted on 127.0.0.1 only, removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN} (set PG_BIN)")
    folder = Path(tempfile.mkdtemp(prefix="gpt-pg-"))
    folder.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"),
                   check=True, capture_output=True)  # fmt: skip
    cluster = Cluster(folder, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unreachable_storage_server_is_one_line(tmp_path, store, verdict, capsys):
    started = time.monotonic()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/postgres"
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--storage", url) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot reach the Optuna storage postgresql://postgres:***@127.0.0.1" in err
    assert "hunter2" not in err and time.monotonic() - started < 60
    assert MlflowClient(store).search_runs(["0"]) == []


def runner_command(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "runner.py"), *args]


@pytest.mark.serial
def test_a_killed_worker_goes_stale_by_heartbeat_and_the_rerun_finishes(postgres, tmp_path, store, verdict):
    storage = postgres.database("heartbeat")
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"))
    command = runner_command("sweep", "--space", str(space), "--trials", "2", "--confirm", "0", "--data", str(verdict))
    command += ["--tracking-uri", store, "--storage", storage, "--heartbeat", "1"]

    def training() -> bool:
        return any(t.state == TrialState.RUNNING and RUN_ID_ATTR in t.user_attrs for t in trials_of(storage))

    start_and_kill_mid_trial(command, tmp_path, training)
    time.sleep(4)  # longer than 3 missed beats: stale by heartbeat alone
    assert subprocess.run(command, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    study = optuna.load_study(study_name="sweep-tiny", storage=storage)
    check_killed_trial_was_retried(study, MlflowClient(store), trials=2)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    """``mlflow server`` on loopback, its runs in PostgreSQL and its artifacts served from a temp folder."""
    with tracking_server(postgres.database(f"tracking_{uuid.uuid4().hex[:8]}"), tmp_path / "artifacts") as url:
        yield url


def test_machines_and_workers_share_one_study_run_exactly_n_and_never_repeat_a_point(
    postgres, mlflow_server, tmp_path, verdict, capsys
):
    storage = postgres.database("machines")
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


@functools.cache
def watching(url: str) -> optuna.storages.RDBStorage:
    """One storage per database for a test's polling: a new one per poll would hold a connection each
    until PostgreSQL has no more to give ("too many clients"); pre-pinged, so it outlives a restart."""
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def trials_of(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="sweep-tiny", storage=watching(storage)).get_trials()
    except KeyError:  # not made yet
        return []


def finished_count(storage: str) -> int:
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials_of(storage))


def reporting_after_the_first(storage: str) -> bool:
    """One trial has finished and another has reported to the pruner: it is between two evaluations."""
    trials = trials_of(storage)
    return any(t.state == TrialState.COMPLETE for t in trials) and any(
        t.state == TrialState.RUNNING and t.intermediate_values for t in trials
    )


@pytest.mark.serial
def test_a_database_restart_mid_sweep_is_waited_out(postgres, tmp_path, verdict):
    """The study and the tracking server's runs in one PostgreSQL, restarted (fast shutdown, down 10 s)
    while two workers train: the sweep finishes, every trial counted, none failed, nothing left RUNNING."""
    storage = postgres.database("restart")
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 3"))
    with tracking_server(postgres.database("restart_tracking"), tmp_path / "artifacts") as server:
        command = runner_command("sweep", "--space", str(space), "--trials", "4", "--workers", "2", "--confirm", "0",
                                 "--data", str(verdict), "--storage", storage, "--tracking-uri", server)  # fmt: skip
        sweeping = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Down while a trial is between two reports to the pruner, so that the Optuna storage's next call falls in
        # the outage: stopped as two trials had just finished, both workers sat in MLflow's own HTTP retries (the
        # tracking server's database is down too) for all of it, and the sweep never called the storage then.
        assert wait_until(lambda: reporting_after_the_first(storage) or sweeping.poll() is not None, 300, every=0.2)
        assert sweeping.poll() is None, "the sweep ended before the restart"
        postgres.stop()
        time.sleep(10)  # the outage itself, not a wait for an event
        postgres.start()
        output, _ = sweeping.communicate(timeout=600)
        assert sweeping.returncode == 0, output
        assert "Traceback" not in output and "is not answering" in output and "answers again after" in output, output
        study = optuna.load_study(study_name="sweep-tiny", storage=storage)
        assert finished_count(storage) == 4
        assert [t.number for t in study.get_trials(states=(TrialState.FAIL,))] == [], output
        client = MlflowClient(server)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) == 5 and {run.info.status for run in runs} == {"FINISHED"}


@pytest.mark.serial
def test_a_database_away_longer_than_the_retry_window_stops_the_sweep_and_the_same_command_resumes(
    postgres, tmp_path, store, verdict
):
    storage = postgres.database("outage")
    space = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 3"))
    command = runner_command("sweep", "--space", str(space), "--trials", "2", "--confirm", "0", "--data", str(verdict),
                             "--storage", storage, "--tracking-uri", store, "--heartbeat", "1",
                             "--storage-retry-s", "3")  # fmt: skip
    sweeping = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: reporting_after_the_first(storage) or sweeping.poll() is not None, 300, every=0.2)
    assert sweeping.poll() is None, "the sweep ended before the outage"
    postgres.stop()
    try:
        _, err = sweeping.communicate(timeout=120)
    finally:
        postgres.start()
    assert sweeping.returncode == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("Error: the Optuna storage postgresql://postgres@"), err
    assert "did not answer for 3 s" in lines[-1] and "is not answering" in lines[0], err
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and "RUNNING" not in {run.info.status for run in runs}

    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    study = optuna.load_study(study_name="sweep-tiny", storage=storage)
    check_killed_trial_was_retried(study, client, trials=2)


def test_a_password_given_to_a_sweep_is_never_printed_or_logged(postgres, tmp_path, verdict):
    """The study and the runs in PostgreSQL, both URLs with a password (the test cluster trusts loopback,
    so any password is accepted): it shows up in no line printed, no MLflow param, tag, metric name,
    artifact or registered model, and no study or trial attribute."""
    secret = "pw-7f3a9c1e"
    with_password = postgres.url.replace("postgres@", f"postgres:{secret}@").rsplit("/", 1)[0]
    postgres.database("secret_study"), postgres.database("secret_runs")
    storage, tracking = f"{with_password}/secret_study", f"{with_password}/secret_runs"
    space = write_space(tmp_path, SPACE)
    command = runner_command("sweep", "--space", str(space), "--trials", "2", "--confirm", "1", "--confirm-seeds", "1",
                             "--data", str(verdict), "--storage", storage, "--tracking-uri", tracking)  # fmt: skip
    swept = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "Best model registered" in swept.stdout and "postgres:***@" in swept.stdout
    seen = [swept.stdout, swept.stderr]

    client = MlflowClient(tracking)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert len(runs) == 4  # the parent, two trials, one confirmation
    for run in runs:
        seen += [repr(run.data.params), repr(run.data.tags), repr(list(run.data.metrics)), run.info.artifact_uri]
        folder = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "downloaded" / run.info.run_id)))
        seen += [path.read_bytes().decode("utf-8", "replace") for path in folder.rglob("*") if path.is_file()]
    for model in client.search_registered_models():
        seen += [repr(model), *(repr(version) for version in client.search_model_versions(f"name='{model.name}'"))]
    study, rdb = optuna.load_study(study_name="sweep-tiny", storage=storage), optuna.storages.RDBStorage(storage)
    seen += [repr(study.user_attrs), repr(rdb.get_study_system_attrs(rdb.get_study_id_from_name("sweep-tiny")))]
    seen += [repr((t.user_attrs, t.system_attrs)) for t in study.get_trials()]
    assert not [text for text in seen if secret in text]
