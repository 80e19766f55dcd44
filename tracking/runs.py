"""The MLflow run lifecycle: runs that always end, and batched params, metrics and tags."""

from __future__ import annotations

import contextlib
import functools
import getpass
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag

from gpt.environment import TrainingSetup
from gpt.errors import one_line
from gpt.interrupt import stopped_by
from gpt.training import total_steps
from tracking.mlflow_internals import system_metrics_logged
from tracking.processes import ProcessId
from tracking.store import refusal_explained

PROJECT_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger(__name__)

MAX_PARAMS_PER_CALL = 100


@functools.cache
def git_commit() -> str | None:
    """The checkout's commit, when run from one; asked once per process, not once per trial."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def context_tags() -> dict[str, str]:
    """The source and user tags MLflow's fluent API sets, so the UI's Source and Created by columns fill in."""
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": Path(sys.argv[0]).name or "python"}
    with contextlib.suppress(Exception):  # no user name in some containers
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def process_tags() -> dict[str, str]:
    """Which process on which machine holds a run open, so that a run left RUNNING can be told dead."""
    holder = ProcessId.this_process()
    return {"process.host": holder.host, "process.pid": str(holder.pid), "process.started": holder.started}


def holder_is_gone(run: Run) -> bool | None:
    """Whether the process that last opened a RUNNING ``run`` has died (SIGKILL, the OOM killer):
    True or False on the machine that ran it, None elsewhere (see ``ProcessId.is_gone``)."""
    tags = run.data.tags
    if not tags.get("process.pid", "").isdigit() or "process.host" not in tags:
        return None
    return ProcessId(tags["process.host"], int(tags["process.pid"]), tags.get("process.started")).is_gone()


def set_description(client: MlflowClient, run_id: str, markdown: str) -> None:
    """The run's description in MLflow's UI (the ``mlflow.note.content`` tag), in markdown."""
    set_tags(client, run_id, {"mlflow.note.content": markdown})


def create_run(client: MlflowClient, experiment: str, run_name: str | None, tags: dict[str, str]) -> str:
    """A new run's id; a server that does not let this user write to the experiment is one line."""
    with refusal_explained(client.tracking_uri, f"create runs in experiment {experiment}"):
        return client.create_run(experiment, run_name=run_name, tags=tags).info.run_id


@contextmanager
def tracked_run(
    client: MlflowClient,
    experiment: str,
    run_name: str | None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    system_metrics: bool = False,
) -> Iterator[str]:
    """An MLflow run that always ends: FINISHED, FAILED (reason tagged) or KILLED by Ctrl-C or SIGTERM
    (the signal tagged as ``stopped_by``).

    With ``run_id`` an existing run is reopened instead of a new one created; with
    ``system_metrics`` the machine's CPU, memory and GPU use are logged while it runs.
    """
    if run_id is None:
        all_tags = {**context_tags(), **process_tags(), **(tags or {})}
        run_id = create_run(client, experiment, run_name, all_tags)
    else:
        client.update_run(run_id, status="RUNNING")
        set_tags(client, run_id, process_tags())
    try:
        with system_metrics_logged(client.tracking_uri, run_id) if system_metrics else contextlib.nullcontext():
            yield run_id
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say which, so a preempted run is no mystery
        close_run(client, run_id, RunStatus.KILLED, {"stopped_by": stopped_by()})
        raise
    except BaseException as exc:
        close_run(client, run_id, RunStatus.FAILED, {"error": one_line(exc, 500)})
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))


def close_run(client: MlflowClient, run_id: str, status: int, tags: dict[str, str]) -> None:
    """End a run that stopped early, with why in its tags. A store that cannot take the write (its disk
    is full) leaves it RUNNING under a process that is gone: the resume or the same sweep command closes
    it, as for a killed process; the error that stopped the run is what the caller hears of."""
    try:
        set_tags(client, run_id, tags)
        client.set_terminated(run_id, RunStatus.to_string(status))
    except Exception as exc:
        log.warning(f"MLflow run {run_id} could not be closed ({one_line(exc)}); the next command closes it")


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(key, str(value)) for key, value in params.items() if value is not None]
    for start in range(0, len(items), MAX_PARAMS_PER_CALL):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_CALL])


def run_params(env: TrainingSetup, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every resolved value a run depends on, flat, as MLflow params."""
    return {
        **env.config.to_flat_dict(),
        "data_source": env.tokens.source,
        "data_sha256": env.tokens.sha256,  # the token cache's key: the corpus's files, sizes and contents
        "data_files": env.tokens.file_count,
        "data_documents": env.tokens.documents,
        "val_documents": env.tokens.val_documents,
        "val_split": env.tokens.split,
        "text_field": env.tokens.text_field,
        **(
            {"val_data_source": env.tokens.val_source, "val_data_sha256": env.tokens.val_sha256}
            if env.tokens.val_source
            else {}
        ),
        "eval_span_tokens": env.validation.final_tokens,
        "eval_subset_tokens": env.validation.during_tokens,
        "tokenizer": env.tokens.encoding,
        "total_tokens": env.tokens.total_tokens,
        "train_tokens": len(env.tokens.train_ids),
        "val_tokens": len(env.tokens.val_ids),
        "total_steps": total_steps(env),
        "device": str(env.device),
        "world_size": env.group.world_size if env.group else 1,
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


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any]) -> None:
    """Set ``tags`` on a run that other processes may be tagging too (two sweep commands share a parent).

    Through ``log_batch``, not ``set_tag``: MLflow's SQL store writes a tag the run does not have yet by
    looking for it, then inserting it, and when two processes do that at once the second insert breaks the
    unique key; ``log_batch`` retries that as an update, ``set_tag`` fails ("UNIQUE constraint failed:
    tags.key, tags.run_uuid", seen in CI with the parent's description).
    """
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
