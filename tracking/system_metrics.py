"""CPU, memory and GPU use as metrics of a run, so a person can see whether training kept the machine busy.

MLflow samples them with its ``SystemMetricsMonitor`` (psutil; NVIDIA's NVML bindings where a GPU
exists), which its fluent ``start_run(log_system_metrics=True)`` starts; the runner drives runs
through ``MlflowClient``, so it starts the same monitor itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SAMPLING_INTERVAL_S = 5.0


@contextmanager
def system_metrics_logged(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Log ``system/*`` metrics of ``run_id`` every ``SAMPLING_INTERVAL_S`` seconds while the block runs.

    The monitor drops the samples of an interval cut short by the run's end, so a run shorter
    than one interval would get none; the last, partial interval is logged here.
    """
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

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
