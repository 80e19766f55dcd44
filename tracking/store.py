"""The MLflow tracking store: resolved, checked to answer in seconds and to let the user in, and its experiments."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator

import filelock
import mlflow
import sqlalchemy
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gpt.errors import UserError, one_line

DEFAULT_EXPERIMENT = "gpt-from-scratch"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
PROBE_TIMEOUT_S = 10
SQLITE_LOCK_TIMEOUT_S = 120  # MLflow's migrations of a new store take seconds
LOGIN_VARIABLES = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or ~/.mlflow/credentials)"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default (``sqlite:///mlflow.db``).

    Read, never set: every client this project makes is given its URI.
    """
    return tracking_uri or mlflow.get_tracking_uri()


def redacted(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def probe_database(url: str, what: str) -> None:
    """Fail in seconds with one line when a database server does not answer.

    MLflow itself retries an unreachable database for about two minutes, then raises.
    """
    connect_args = {"connect_timeout": PROBE_TIMEOUT_S} if url.startswith(("postgresql", "mysql")) else {}
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # SQLAlchemy and its drivers raise many kinds for an unreachable server
        raise UserError(f"cannot reach the {what} {redacted(url)}: {one_line(exc)}") from None


def probe_server(url: str) -> None:
    """Fail in seconds when a tracking server does not answer; MLflow's client retries for minutes."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server behind auth or a proxy still counts as reachable
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach the MLflow tracking server {redacted(url)}: {reason}") from None


def refusal(exc: MlflowException, uri: str, action: str) -> UserError | None:
    """A tracking server's 401 or 403 as one line that says what to set or ask for; None for other errors.

    ``action`` says what was refused, as in "does not let user 'bob' <action>".
    """
    status, user = exc.get_http_status_code(), os.environ.get("MLFLOW_TRACKING_USERNAME")
    server = f"the MLflow tracking server {redacted(uri)}"
    if status == 401 and user:
        return UserError(
            f"{server} refused the login of user {user!r} (401 Unauthorized: a wrong password, or no such user); "
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if status == 401:
        return UserError(f"{server} asks for a login (401 Unauthorized): set {LOGIN_VARIABLES} to an account of it")
    if status == 403:
        who = f"user {user!r}" if user else "this login"
        return UserError(
            f"{server} does not let {who} {action} (403 Permission denied): ask its admin for EDIT permission "
            "on the experiment, or use an --experiment of your own"
        )
    return None


@contextlib.contextmanager
def refusal_explained(uri: str, action: str) -> Iterator[None]:
    """A tracking server's refusal inside (HTTP 401 or 403) comes out as one line (``refusal``)."""
    try:
        yield
    except MlflowException as exc:
        refused = refusal(exc, uri, action)
        if refused is None:
            raise
        raise refused from None


def connect(tracking_uri: str | None = None) -> MlflowClient:
    """A client for the resolved store, checked to answer."""
    uri = resolve_tracking_uri(tracking_uri)
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme == "file":
        raise UserError(f"tracking URI {uri} is a plain file store, which MLflow 3 refuses; use sqlite:///mlflow.db")
    if scheme in ("http", "https"):
        probe_server(uri)
    elif scheme != "sqlite" and scheme != "databricks":
        probe_database(uri, "MLflow tracking store")
    try:
        with creation_lock(uri), refusal_explained(uri, "read its experiments"):
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)  # a new or older store gets MLflow's tables here
    except UserError:
        raise
    except Exception as exc:  # MLflow raises many kinds for an unusable store
        raise UserError(f"cannot reach the MLflow tracking store {redacted(uri)}: {one_line(exc)}") from None
    if scheme == "sqlite":
        write_ahead_log(uri)
    return client


def creation_lock(uri: str) -> contextlib.AbstractContextManager:
    """Held while MLflow makes or migrates a SQLite store's tables: two commands started at once on a new
    store (two terminals of one sweep) would otherwise both add them, and one would fail
    ("duplicate column name"). A database server needs no lock here; MLflow's migrations run in its
    transactions."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    return filelock.FileLock(uri.removeprefix("sqlite:///") + ".lock", timeout=SQLITE_LOCK_TIMEOUT_S)


def write_ahead_log(sqlite_uri: str) -> None:
    """Switch a SQLite store to WAL once (it persists in the file), so sweep workers logging at once
    do not block each other's reads; writers then queue on MLflow's 20 s busy timeout instead of failing.
    """
    with contextlib.closing(sqlite3.connect(sqlite_uri.removeprefix("sqlite:///"), timeout=30)) as db:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created on first use.

    MLflow's UI opens an experiment on the view its ``mlflow.experimentKind`` tag names; without
    it a training experiment lands on an empty GenAI traces page. Ours say model training,
    unless a user already chose otherwise.
    """
    with refusal_explained(client.tracking_uri, f"use experiment {name!r}"):
        return _experiment_id(client, name)


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException:  # another worker created it first
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} is deleted; restore it or pick another --experiment")
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id
