"""MLflow tracking for single runs and sweep trials: the store, run lifecycle and the metrics callback."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import sqlalchemy
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException

from gpt.checkpoint import save_checkpoint
from gpt.config import write_config_file
from gpt.environment import Environment
from gpt.errors import UserError, one_line
from gpt.model import count_parameters
from gpt.plotting import plot_losses
from gpt.training import EvalResult, TrainingCallback, TrainingHistory, train

DEFAULT_EXPERIMENT = "gpt-from-scratch"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_PARAMS_PER_CALL = 100
PROBE_TIMEOUT_S = 10

# MLflow announces its database migrations on every new store; they are not news to a user.
for _noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default (``sqlite:///mlflow.db``)."""
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.get_tracking_uri()


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
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # MLflow raises many kinds for an unusable store
        raise UserError(f"cannot reach the MLflow tracking store {redacted(uri)}: {one_line(exc)}") from None
    if scheme == "sqlite":
        write_ahead_log(uri)
    return client


def write_ahead_log(sqlite_uri: str) -> None:
    """Switch a SQLite store to WAL once (it persists in the file), so sweep workers logging at once
    do not block each other's reads; writers then queue on MLflow's 20 s busy timeout instead of failing.
    """
    with contextlib.closing(sqlite3.connect(sqlite_uri.removeprefix("sqlite:///"), timeout=30)) as db:
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")


def experiment_id(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # another worker created it first
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} is deleted; restore it or pick another --experiment")
    return experiment.experiment_id


def git_commit() -> str | None:
    """The checkout's commit, when run from one."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


@contextmanager
def tracked_run(
    client: MlflowClient,
    experiment: str,
    run_name: str | None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> Iterator[str]:
    """An MLflow run that always ends: FINISHED, FAILED (reason tagged) or KILLED on Ctrl-C.

    With ``run_id`` an existing run is reopened instead of a new one created.
    """
    if run_id is None:
        run_id = client.create_run(experiment, run_name=run_name, tags=tags or {}).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    try:
        yield run_id
    except KeyboardInterrupt:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as exc:
        client.set_tag(run_id, "error", one_line(exc))
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(key, str(value)) for key, value in params.items() if value is not None]
    for start in range(0, len(items), MAX_PARAMS_PER_CALL):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_CALL])


def run_params(env: Environment, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every resolved value a run depends on, flat, as MLflow params."""
    return {
        **env.config.to_flat_dict(),
        "data_source": env.tokens.source,
        "data_sha256": env.tokens.sha256,
        "tokenizer": env.tokens.encoding,
        "total_tokens": env.tokens.total_tokens,
        "train_tokens": len(env.tokens.train_ids),
        "val_tokens": len(env.tokens.val_ids),
        "device": str(env.device),
        "resolved_precision": env.precision,
        "git_commit": git_commit(),
        **(extra or {}),
    }


def metrics_at(step: int, values: dict[str, float]) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(name, float(value), now, step) for name, value in values.items()]


def log_metrics(client: MlflowClient, run_id: str, step: int, values: dict[str, float]) -> None:
    """All ``values`` at ``step`` in one batched call."""
    client.log_batch(run_id, metrics=metrics_at(step, values))


class MlflowReporter(TrainingCallback):
    """Batches metrics: batch losses wait for the next evaluation, or a few seconds, and go in one call.

    One store write per evaluation instead of one per step keeps tracking to a small
    fraction of training time; ``flush`` sends whatever is still waiting.
    """

    MAX_WAIT_S = 5.0
    MAX_PENDING = 1000  # MLflow's own limit per log_batch call

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.samples: list[str] = []
        self.pending: list[Metric] = []
        self.last_flush = time.monotonic()

    def flush(self) -> None:
        if self.pending:
            self.client.log_batch(self.run_id, metrics=self.pending)
            self.pending = []
        self.last_flush = time.monotonic()

    def on_batch(self, step: int, loss: float) -> None:
        self.pending += metrics_at(step, {"batch_loss": loss})
        if len(self.pending) >= self.MAX_PENDING or time.monotonic() - self.last_flush > self.MAX_WAIT_S:
            self.flush()

    def on_eval(self, result: EvalResult) -> None:
        self.pending += metrics_at(
            result.step,
            {
                "train_loss": result.train_loss,
                "val_loss": result.val_loss,
                "tokens_seen": result.tokens_seen,
                "learning_rate": result.learning_rate,
                "tokens_per_sec": result.tokens_per_sec,
            },
        )
        self.flush()

    def on_epoch_end(self, epoch: int, sample: str) -> None:
        self.flush()
        self.samples.append(f"--- epoch {epoch} ---\n{sample}\n")
        self.client.log_text(self.run_id, "\n".join(self.samples), "samples.txt")


def train_tracked(
    env: Environment,
    client: MlflowClient,
    run_id: str,
    callbacks: Sequence[TrainingCallback] = (),
    log_every: int = 1,
    progress_bar: bool = True,
    keep_checkpoint: bool = True,
    plot_dir: Path | None = None,
    history: TrainingHistory | None = None,
) -> TrainingHistory:
    """Train with every eval in MLflow, then log the plot, config and (optionally) the checkpoint.

    On Ctrl-C the checkpoint of the last completed step is still logged before the
    interrupt goes on up, so a killed run keeps its weights. ``history`` continues a resumed run.
    """
    history = history or TrainingHistory()
    with tempfile.TemporaryDirectory(prefix="gpt-run-") as scratch:
        scratch_dir = Path(scratch)
        client.log_artifact(run_id, str(write_config_file(env.config, scratch_dir / "config.yaml")))
        reporter = MlflowReporter(client, run_id)
        try:
            train(env, [reporter, *callbacks], log_every, progress_bar, history)
        except KeyboardInterrupt:
            if keep_checkpoint and history.step >= 0:
                log_checkpoint(env, client, run_id, history)
            raise
        finally:
            reporter.flush()
            if history.evals:
                title = f"{client.get_run(run_id).info.run_name} ({count_parameters(env.model):,} parameters)"
                plot = plot_losses(history, (plot_dir or scratch_dir) / "training_losses.png", title)
                client.log_artifact(run_id, str(plot))
    best = history.best_eval
    if best is not None:
        log_metrics(client, run_id, best.step, {"best_val_loss": best.val_loss, "best_val_step": best.step})
    if keep_checkpoint:
        log_checkpoint(env, client, run_id, history)
    return history


CHECKPOINT_DIR = "checkpoint"


def log_checkpoint(env: Environment, client: MlflowClient, run_id: str, history: TrainingHistory) -> None:
    """Everything to sample or resume from, as ``checkpoint/model.pt`` of the run."""
    with tempfile.TemporaryDirectory(prefix="gpt-checkpoint-") as scratch:
        path = save_checkpoint(Path(scratch) / "model.pt", env, history)
        client.log_artifact(run_id, str(path), CHECKPOINT_DIR)
    client.set_tag(run_id, "checkpoint", f"{CHECKPOINT_DIR}/model.pt")


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
