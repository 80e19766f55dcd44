"""A tracking server behind MLflow's basic auth: the runner works with a login, and a missing, wrong or
read-only one is one line that says what to set or ask for, with nothing left RUNNING."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from mlflow.server import get_app_client
from support import SPACE, sweep, tracking_server, write_space

import runner
from tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

pytestmark = pytest.mark.slow  # end to end: a server and the runner against it

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-1234"
WRITER, WRITER_PASSWORD = "alice", "alice-password-1234"
READER, READER_PASSWORD = "bob", "bob-password-1234"
SHARED = "shared-by-admin"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """``mlflow server --app-name basic-auth`` on loopback, with a user who may write and one who may only
    read the admin's experiment ``SHARED``."""
    folder = tmp_path_factory.mktemp("auth-server")
    config = folder / "basic_auth.ini"
    config.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{folder / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-secret-for-tests-only",
    }
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    with tracking_server(backend, folder / "artifacts", "--app-name", "basic-auth", env=env) as url:
        with pytest.MonkeyPatch.context() as admin:
            admin.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
            admin.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            users = get_app_client("basic-auth", tracking_uri=url)
            users.create_user(WRITER, WRITER_PASSWORD)
            users.create_user(READER, READER_PASSWORD)
            shared = MlflowClient(url).create_experiment(SHARED, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            users.grant_user_permission(READER, "experiment", shared, "READ")
        yield url


def login(monkeypatch: pytest.MonkeyPatch, user: str | None, password: str | None) -> None:
    for variable, value in (("MLFLOW_TRACKING_USERNAME", user), ("MLFLOW_TRACKING_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)


def all_runs(url: str, monkeypatch: pytest.MonkeyPatch) -> list:
    """Every run on the server, read as the admin."""
    login(monkeypatch, ADMIN, ADMIN_PASSWORD)
    client = MlflowClient(url)
    return client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)


def single(url: str, verdict, *args: str) -> int:
    return runner.main(["single", "--data", str(verdict), "--tracking-uri", url, "--max-steps", "2", *args])


def test_single_sweep_and_generate_work_with_a_login(auth_server, tmp_path, verdict, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    login(monkeypatch, WRITER, WRITER_PASSWORD)
    assert single(auth_server, verdict, "--run-name", "alice-single") == 0
    space = write_space(tmp_path, SPACE)
    assert sweep(space, auth_server, verdict, "--trials", "2", "--workers", "2", "--study", "auth-sweep") == 0
    assert "Best model registered as models:/gpt-auth-sweep/1" in capsys.readouterr().out
    assert runner.main(["generate", "--study", "auth-sweep", "--tracking-uri", auth_server,
                        "--max-new-tokens", "5"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("Every effort moves you")

    runs = all_runs(auth_server, monkeypatch)
    assert {run.info.run_name for run in runs} >= {"alice-single", "auth-sweep", "auth-sweep-trial-0"}
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert MlflowClient(auth_server).get_registered_model("gpt-auth-sweep").latest_versions


@pytest.mark.parametrize(
    ("user", "password", "said"),
    [
        (None, None, "asks for a login (401 Unauthorized): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"),
        (WRITER, "not-her-password", f"refused the login of user {WRITER!r} (401 Unauthorized"),
        (READER, READER_PASSWORD, f"does not let user {READER!r} create runs in experiment"),
    ],
    ids=["no login", "wrong password", "read only"],
)
def test_a_refused_login_is_one_line_and_leaves_nothing_running(
    auth_server, tmp_path, verdict, monkeypatch, capsys, user, password, said
):
    monkeypatch.chdir(tmp_path)
    before = {run.info.run_id for run in all_runs(auth_server, monkeypatch)}
    login(monkeypatch, user, password)
    capsys.readouterr()
    space = write_space(tmp_path, SPACE)
    commands = {
        "single": lambda: single(auth_server, verdict, "--experiment", SHARED),
        "sweep": lambda: sweep(space, auth_server, verdict, "--trials", "2", "--experiment", SHARED),
    }
    for name, command in commands.items():
        assert command() == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err and auth_server in err, (name, err)
        assert "Traceback" not in err and (password is None or password not in err)
    after = all_runs(auth_server, monkeypatch)
    assert {run.info.run_id for run in after} == before  # refused before any run was made
    assert "RUNNING" not in {run.info.status for run in after}
