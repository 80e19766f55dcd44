"""Every use of MLflow beyond its public client API, in one place: each with why no public API serves.

``setup.cfg`` caps MLflow below its next major version, and ``tests/test_library_internals.py`` fails
loudly if a release removes anything used here. To raise the cap, run that test against the new version
and follow each link below.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

EXPERIMENT_VARIABLE = "MLFLOW_EXPERIMENT_ID"
SAMPLING_INTERVAL_S = 5.0


@contextmanager
def fluent_calls_on(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    """Within the block, MLflow's fluent calls go to ``tracking_uri`` and experiment ``experiment_id``;
    after it, to wherever they went before.

    ``mlflow.pytorch.log_model`` resolves its store from the process-wide tracking URI only; MLflow has no
    ``MlflowClient.log_model`` (https://github.com/mlflow/mlflow/issues/7392). ``mlflow.set_tracking_uri``
    would change the URI for the rest of the process, and its ``MLFLOW_TRACKING_URI`` variable for every
    process started after it; MLflow's private ``_use_tracking_uri`` sets both for a block and restores
    them after. Given a ``run_id``, ``log_model`` still files the model it creates under the process's
    active experiment (Default, which a user of an authenticated server may only read), so MLflow's
    documented ``MLFLOW_EXPERIMENT_ID`` is set for the block too and restored after.
    """
    before = os.environ.get(EXPERIMENT_VARIABLE)
    os.environ[EXPERIMENT_VARIABLE] = experiment_id
    try:
        with _use_tracking_uri(tracking_uri):
            yield
    finally:
        if before is None:
            os.environ.pop(EXPERIMENT_VARIABLE, None)
        else:
            os.environ[EXPERIMENT_VARIABLE] = before


@contextmanager
def system_metrics_logged(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Log ``system/*`` metrics (CPU, memory, GPU) of ``run_id`` every ``SAMPLING_INTERVAL_S`` seconds while
    the block runs.

    MLflow's fluent ``start_run(log_system_metrics=True)`` starts its ``SystemMetricsMonitor``; the runner
    drives runs through ``MlflowClient``, which has no such switch, so it starts the monitor itself. The
    monitor drops the samples of an interval cut short by the run's end, so a run shorter than one interval
    would get none; its sampling methods log that last, partial interval here.
    """
    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=SAMPLING_INTERVAL_S, resume_logging=True, tracking_uri=tracking_uri
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()


def delete_artifacts(client: MlflowClient, run_id: str, artifact_path: str) -> None:
    """Delete ``artifact_path`` of a run from any artifact store. ``MlflowClient`` has no delete call
    (https://github.com/mlflow/mlflow/issues/1555 asks for one); the repository for the run's artifact URI,
    reached through this client's store (a tracking server proxies its artifacts), does it."""
    repository = get_artifact_repository(client.get_run(run_id).info.artifact_uri, tracking_uri=client.tracking_uri)
    repository.delete_artifacts(artifact_path)


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder behind a run's artifact URI when it is on this machine's disk, else None.

    A checkpoint of GBs is written there in place, once and atomically, instead of to a temporary file
    that ``log_artifact`` then copies: MLflow's layout of a local artifact store (the URI is the folder) is
    what this relies on, which MLflow documents but offers no API for.
    """
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" and artifact_uri.startswith("/"):
        return Path(artifact_uri)
    return None
