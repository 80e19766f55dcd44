"""MLflow's fluent API for one call, on a given store and experiment, without leaving the process pointed at it.

``mlflow.pytorch.log_model`` resolves its store from the process-wide tracking URI only; MLflow has no
``MlflowClient.log_model`` (https://github.com/mlflow/mlflow/issues/7392). ``mlflow.set_tracking_uri``
would change the URI for the rest of the process, and its ``MLFLOW_TRACKING_URI`` variable for every
process started after it. MLflow's own developer API ``_use_tracking_uri`` sets both for a block and
restores them after; it is private, so this module is the one place that uses it.

Given a ``run_id``, ``log_model`` still files the model it creates under the process's active
experiment (Default, id 0, when none is set), not under the run's: on a server with authentication
that is an experiment the user may only read, and the call is refused. ``MLFLOW_EXPERIMENT_ID``, MLflow's
documented variable for the active experiment, is set for the block too and restored after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.tracking._tracking_service.utils import _use_tracking_uri

EXPERIMENT_VARIABLE = "MLFLOW_EXPERIMENT_ID"


@contextmanager
def fluent_calls_on(tracking_uri: str, experiment_id: str) -> Iterator[None]:
    """Within the block, MLflow's fluent calls go to ``tracking_uri`` and experiment ``experiment_id``;
    after it, to wherever they went before."""
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
