"""Training inside an MLflow run: every evaluation logged, then the plot, the config and the checkpoint."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from pathlib import Path

from mlflow import MlflowClient

from gpt.atomic import atomic_path
from gpt.checkpoint import checkpoint_bytes, save_checkpoint
from gpt.config import write_config_file
from gpt.disk_space import OutOfSpace, free_bytes, size, writing
from gpt.environment import TrainingSetup
from gpt.errors import one_line
from gpt.interrupt import stopped_by
from gpt.model import count_parameters
from gpt.training import TrainingCallback, TrainingHistory, train
from tracking.mlflow_internals import delete_artifacts, local_artifact_dir
from tracking.reporter import MlflowReporter
from tracking.runs import log_metrics, set_tags

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/model.pt"
DATA_FILES_ARTIFACT = "data_files.txt"  # a line a file of the corpus: sha256, size, name


def train_tracked(
    env: TrainingSetup,
    client: MlflowClient,
    run_id: str,
    callbacks: Sequence[TrainingCallback] = (),
    log_every: int = 1,
    progress_bar: bool = True,
    keep_checkpoint: bool = True,
    plot_dir: Path | None = None,
    history: TrainingHistory | None = None,
    plotter: Executor | None = None,
) -> TrainingHistory:
    """Train with every eval in MLflow, then log the plot, config and (optionally) the checkpoint.

    With ``keep_checkpoint`` the run's checkpoint is also rewritten as training goes
    (``checkpoint_every``), so a run killed outright resumes from there; on Ctrl-C or SIGTERM the
    checkpoint of the last completed step is logged before the interrupt goes on up.
    ``history`` continues a resumed run. With ``plotter`` the loss plot is drawn and uploaded
    there, off the training thread.
    """
    history = history if history is not None else TrainingHistory()
    with tempfile.TemporaryDirectory(prefix="gpt-run-") as scratch:
        client.log_artifact(run_id, str(write_config_file(env.config, Path(scratch) / "config.yaml")))
        data_files = Path(scratch) / DATA_FILES_ARTIFACT  # which files, of what size and content, it trained on
        data_files.write_text(env.tokens.files or f"{env.tokens.sha256}  {env.tokens.source}\n")
        client.log_artifact(run_id, str(data_files))
    reporter = MlflowReporter(client, run_id)
    periodic = [RunCheckpointer(env, client, run_id)] if keep_checkpoint else []
    if keep_checkpoint:
        warn_if_the_checkpoint_may_not_fit(env, client, run_id)
    stopped = ""  # why training ended early, for the plot's title
    try:
        train(env, [reporter, *periodic, *callbacks], log_every, progress_bar, history)
    except KeyboardInterrupt:
        stopped = f"stopped by {stopped_by()}"
        if keep_checkpoint and history.step >= 0:
            log_checkpoint(env, client, run_id, history)
        raise
    except Exception as exc:  # a callback's stop (a pruned trial) or a failure: what was learnt still shows
        stopped = str(exc) or type(exc).__name__
        raise
    finally:
        reporter.flush()
        best = history.best_eval
        if best is not None:  # also for a stopped run: the best it reached before stopping
            log_metrics(client, run_id, best.step, {"best_val_loss": best.val_loss, "best_val_step": best.step})
            parameters = count_parameters(env.model)
            if plotter is None:
                log_loss_plot(client, run_id, history, parameters, stopped, plot_dir)
            else:
                plotter.submit(log_loss_plot, client, run_id, history, parameters, stopped, plot_dir).add_done_callback(
                    _report_failure
                )
    if keep_checkpoint:
        log_checkpoint(env, client, run_id, history)
    return history


def log_loss_plot(
    client: MlflowClient,
    run_id: str,
    history: TrainingHistory,
    parameters: int,
    stopped: str = "",
    folder: Path | None = None,
) -> None:
    """Draw ``training_losses.png`` (in ``folder``, else a temporary one) and log it to the run.

    ``stopped`` says why training ended early (``pruned at 3/10 of training``), in the title.
    """
    from gpt.plotting import plot_losses  # matplotlib loads here, off the training thread where a plotter is used

    run = client.get_run(run_id)
    title = f"{run.info.run_name} ({parameters:,} parameters)" + (f": {stopped}" if stopped else "")
    local = local_artifact_dir(run.info.artifact_uri)
    with tempfile.TemporaryDirectory(prefix="gpt-plot-") as scratch, writing("the loss plot", local or folder or "."):
        plot = plot_losses(history, (folder or Path(scratch)) / "training_losses.png", title)
        if local is not None:  # copied in atomically: a full disk leaves no half-written plot in the run
            with atomic_path(local / plot.name) as tmp:
                shutil.copyfile(plot, tmp)
        else:
            client.log_artifact(run_id, str(plot))


def _report_failure(future: Future) -> None:
    """A plot drawn off the training thread that fails costs a line, never the sweep. One that found the
    disk full is said as information: the checkpoint written beside it fills the disk first and says so as
    the sweep's error, where it does."""
    exc = future.exception()
    if exc is not None:
        say = log.info if isinstance(exc, OutOfSpace) else log.warning
        say(f"Could not log a loss plot: {one_line(exc, 500)}")


def log_checkpoint(
    env: TrainingSetup, client: MlflowClient, run_id: str, history: TrainingHistory, resumable: bool = True
) -> None:
    """Everything to sample from (and, if ``resumable``, to resume) as ``checkpoint/model.pt`` of the run.

    A local artifact store gets the file written once, atomically, in place; any other
    store gets it through a temporary file and MLflow's upload.
    """
    folder = local_artifact_dir(client.get_run(run_id).info.artifact_uri)
    needed = checkpoint_bytes(env, resumable)
    if folder is not None:
        with writing("the checkpoint", folder / CHECKPOINT_DIR, needed):
            save_checkpoint(folder / CHECKPOINT_FILE, env, history, resumable)
    else:
        with tempfile.TemporaryDirectory(prefix="gpt-checkpoint-") as scratch:
            with writing("the checkpoint", scratch, needed):
                path = save_checkpoint(Path(scratch) / "model.pt", env, history, resumable)
            client.log_artifact(run_id, str(path), CHECKPOINT_DIR)
    client.set_tag(run_id, "checkpoint", CHECKPOINT_FILE)


def warn_if_the_checkpoint_may_not_fit(env: TrainingSetup, client: MlflowClient, run_id: str) -> None:
    """Say once, at a run's start, when its artifact folder has less free space than its checkpoint needs."""
    folder = local_artifact_dir(client.get_run(run_id).info.artifact_uri)
    free, needed = (free_bytes(folder), checkpoint_bytes(env)) if folder is not None else (None, 0)
    if free is not None and free < needed:
        log.warning(
            f"The checkpoint of this run needs about {size(needed)}; {folder} has {size(free)} free: "
            "free some before it is written, or the run ends there (resumable from its last checkpoint)"
        )


class RunCheckpointer(TrainingCallback):
    """Writes the run's resumable checkpoint whenever the training loop says one is due."""

    def __init__(self, env: TrainingSetup, client: MlflowClient, run_id: str) -> None:
        self.env, self.client, self.run_id = env, client, run_id

    def on_checkpoint(self, history: TrainingHistory) -> None:
        log_checkpoint(self.env, self.client, self.run_id, history)


def delete_checkpoint(client: MlflowClient, run_id: str, reason: str) -> bool:
    """Delete the run's checkpoint from any artifact store and say why in its tag; False if it had none."""
    if client.get_run(run_id).data.tags.get("checkpoint") != CHECKPOINT_FILE:
        return False
    with contextlib.suppress(FileNotFoundError):  # two sweep commands on one store dropped it at once
        delete_artifacts(client, run_id, CHECKPOINT_DIR)
    set_tags(client, run_id, {"checkpoint": f"removed: {reason}"})
    return True
