"""MLflow's fluent API for one call, on a given store, without leaving the process pointed at it.

``mlflow.pytorch.log_model`` resolves its store from the process-wide tracking URI only; MLflow has no
``MlflowClient.log_model`` (https://github.com/mlflow/mlflow/issues/7392). ``mlflow.set_tracking_uri``
would change the URI for the rest of the process, and its ``MLFLOW_TRACKING_URI`` variable for every
process started after it. MLflow's own developer API ``_use_tracking_uri`` sets both for a block and
restores them after; it is private, so this module is the one place that uses it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from mlflow.tracking._tracking_service.utils import _use_tracking_uri


def tracking_uri_for_fluent_calls(tracking_uri: str) -> AbstractContextManager[None]:
    """Within the block, MLflow's fluent calls go to ``tracking_uri``; after it, to whatever they went before."""
    return _use_tracking_uri(tracking_uri)
