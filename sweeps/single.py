"""One tracked training run: what ``runner.py single`` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from mlflow import MlflowClient

from gpt.config import TrainingConfig
from gpt.environment import Environment, prepare_environment
from gpt.errors import ConfigError
from gpt.model import count_parameters
from gpt.training import ConsoleReporter, TrainingHistory
from sweeps.tracking import (
    DEFAULT_EXPERIMENT,
    connect,
    experiment_id,
    log_params,
    run_params,
    tracked_run,
    train_tracked,
)


@dataclass(frozen=True)
class SingleRunResult:
    run_id: str
    experiment_id: str
    history: TrainingHistory


def describe_environment(env: Environment) -> str:
    model = env.config.model
    return "\n".join(
        [
            "GPT Model Training Pipeline",
            f"Device: {env.device.type.upper()} ({env.device_reason}), precision {env.precision}",
            f"Tokenizer: {'GPT-2 (tiktoken)' if env.tokenizer.name == 'gpt2' else env.tokenizer.name}",
            f"Data: {env.tokens.source} ({len(env.tokens.train_ids):,} train / {len(env.tokens.val_ids):,} val tokens)",
            "Model configuration",
            f"  Vocab size:      {model.vocab_size}",
            f"  Context length:  {model.context_length}",
            f"  Embedding dim:   {model.emb_dim}",
            f"  Num heads:       {model.n_heads}",
            f"  Num layers:      {model.n_layers}",
            f"  Dropout:         {model.drop_rate}",
            f"  QKV bias:        {model.qkv_bias}",
            f"  Total params:    {count_parameters(env.model):,}",
        ]
    )


def describe_result(history: TrainingHistory) -> str:
    if not history.evals:
        return "Training summary: no evaluation was reached"
    last, best = history.evals[-1], history.best_eval
    return (
        f"Training summary: final train loss {last.train_loss:.4f}, final val loss {last.val_loss:.4f}, "
        f"best val loss {best.val_loss:.4f} (step {best.step})"
    )


def how_to_open(client: MlflowClient, experiment: str, run_id: str) -> str:
    uri = client.tracking_uri
    if uri.startswith(("http://", "https://")):
        ui = f"open {uri}"
    elif uri.endswith("/mlflow.db") and uri.startswith("sqlite:///"):
        ui = "python runner.py ui"
    else:
        ui = f"python runner.py ui --tracking-uri {uri}"
    return f"MLflow run {run_id} (experiment {experiment}); browse it with: {ui}"


def run_single(
    config: TrainingConfig,
    mode: str,
    data: str | None = None,
    device: str = "auto",
    log_every: int = 1,
    experiment: str = DEFAULT_EXPERIMENT,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    output_dir: Path = Path("."),
) -> SingleRunResult:
    """Check the store, ready data and model, then train inside one MLflow run."""
    if log_every < 1:
        raise ConfigError(f"log_every must be >= 1 (got {log_every})")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use output folder {output_dir}: {exc.strerror}") from None
    client = connect(tracking_uri)
    env = prepare_environment(config, data, device)
    click.echo(describe_environment(env))
    exp_id = experiment_id(client, experiment)
    with tracked_run(client, exp_id, run_name, tags={"mode": mode}) as run_id:
        click.echo(f"MLflow run {run_id} started")
        log_params(client, run_id, run_params(env, {"mode": mode}))
        history = train_tracked(env, client, run_id, [ConsoleReporter()], log_every, plot_dir=output_dir)
        click.echo(f"Saved training loss plot to {output_dir / 'training_losses.png'}")
        click.echo(describe_result(history))
    click.echo(how_to_open(client, experiment, run_id))
    return SingleRunResult(run_id, exp_id, history)
