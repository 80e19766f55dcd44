"""Trained models back out of MLflow: a run's checkpoint, its model rebuilt, registered, sampled from."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gpt.checkpoint import load_checkpoint, restore_model
from gpt.config import TrainingConfig
from gpt.data import gpt2_encoding
from gpt.device import choose_device
from gpt.disk_space import writing
from gpt.errors import ConfigError, UserError, one_line
from gpt.generation import SamplingSettings, continue_text
from gpt.model import GPTModel
from tracking.mlflow_internals import fluent_calls_on
from tracking.store import connect, redacted
from tracking.training import CHECKPOINT_FILE


def checkpoint_of(client: MlflowClient, run_id: str) -> str:
    """The artifact path of ``run_id``'s checkpoint, or one line saying why there is none."""
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"no MLflow run {run_id!r} in {redacted(client.tracking_uri)}") from None
    tag = run.data.tags.get("checkpoint", "")
    if tag != CHECKPOINT_FILE:
        reason = f" ({tag})" if tag else ""
        raise UserError(f"MLflow run {run_id} has no checkpoint{reason}")
    return tag


def download_checkpoint(client: MlflowClient, run_id: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """``run_id``'s checkpoint, fetched through MLflow (any artifact store) and loaded."""
    artifact = checkpoint_of(client, run_id)
    with tempfile.TemporaryDirectory(prefix="gpt-checkpoint-") as scratch:
        try:
            with writing("the downloaded checkpoint", scratch):
                path = client.download_artifacts(run_id, artifact, scratch)
        except (MlflowException, OSError) as exc:
            raise UserError(f"could not download the checkpoint of run {run_id}: {one_line(exc)}") from None
        try:
            return load_checkpoint(Path(path), device)
        except Exception as exc:  # truncated or foreign files fail in many ways; all mean the same here
            raise UserError(f"the checkpoint of run {run_id} cannot be read ({one_line(exc)})") from None


def load_run_model(
    client: MlflowClient, run_id: str, device: str | torch.device = "cpu"
) -> tuple[GPTModel, TrainingConfig]:
    """Rebuild ``run_id``'s trained model from its checkpoint."""
    checkpoint = download_checkpoint(client, run_id, device)
    try:
        model, config = restore_model(checkpoint)
    except Exception as exc:  # a checkpoint of another model layout or version
        raise UserError(f"the checkpoint of run {run_id} does not fit this version's model ({one_line(exc)})") from None
    return model.to(device), config


def register_run_model(client: MlflowClient, run_id: str, name: str) -> str:
    """Log ``run_id``'s trained model as an MLflow model of the run and register it as ``name``.

    The model is linked to the run's metrics at its best evaluation step (``best_val_step``),
    so the Models page shows the losses it reached, not those of step 0; the run itself is not
    reopened, so its status and times stay as training left them. Returns ``models:/name/version``;
    a version that already holds this run's model is reused, so registering the same run again
    adds nothing.
    """
    import mlflow.pytorch  # here, not at the top: its import costs a second and calls logging.basicConfig

    for version in client.search_model_versions(f"name = '{name}'"):
        if version.run_id == run_id:
            return f"models:/{name}/{version.version}"
    model, _ = load_run_model(client, run_id)
    run = client.get_run(run_id)
    best_step = int(run.data.metrics.get("best_val_step", 0))
    # log_model, and the registry resolving the logged model a version points at, read the process-wide
    # URI; log_model files the model under the active experiment, which must be the run's.
    with fluent_calls_on(client.tracking_uri, run.info.experiment_id):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow warns about the missing signature and input example
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                serialization_format="pickle",  # the whole GPTModel, so it generates at any length (pt2 traces one)
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "tiktoken"],
                run_id=run_id,  # passed on to mlflow.models.Model.log: the run, without starting it again
                step=best_step,
            )
        # Registered through the client, not log_model's registered_model_name: that path prints
        # "Successfully registered model ..." to stderr, and the runner says what it registered itself.
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(name, source=info.model_uri, run_id=run_id, model_id=info.model_id)
    return f"models:/{name}/{version.version}"


def sample_from_run(
    tracking_uri: str | None,
    run_id: str,
    prompt: str,
    settings: SamplingSettings,
    seed: int | None = None,
    device: str = "auto",
) -> str:
    """The prompt and its continuation by ``run_id``'s model."""
    if not prompt:
        raise ConfigError("prompt must not be empty")
    client = connect(tracking_uri)
    torch_device, _ = choose_device(device)
    model, _ = load_run_model(client, run_id, torch_device)
    return continue_text(model, gpt2_encoding(), prompt, settings, seed)
