"""One tracked training run: what ``runner.py single`` does."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from gpt.checkpoint import restore_training
from gpt.config import TrainingConfig
from gpt.corpus import DEFAULT_TEXT_FIELD, values_of
from gpt.disk_space import OutOfSpace
from gpt.distributed import ProcessGroup
from gpt.environment import TrainingSetup, prepare_environment
from gpt.errors import ConfigError, UserError, one_line
from gpt.model import count_parameters
from gpt.training import TrainingCallback, TrainingHistory, total_steps, train
from tracking.models import download_checkpoint
from tracking.run_options import RunOptions
from tracking.runs import holder_is_gone, log_params, run_params, set_description, tracked_run
from tracking.store import connect, experiment_id
from tracking.training import train_tracked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SingleRunResult:
    run_id: str
    experiment_id: str
    history: TrainingHistory


def describe_environment(env: TrainingSetup) -> str:
    model = env.config.model
    return "\n".join(
        [
            "GPT Model Training Pipeline",
            f"Device: {env.device.type.upper()} ({env.device_reason}), precision {env.precision}",
            f"Tokenizer: {'GPT-2 (tiktoken)' if env.tokenizer.name == 'gpt2' else env.tokenizer.name}",
            f"Data: {env.tokens.summary()}",
            f"Validation: {env.validation.during_tokens:,} tokens at each evaluation, "
            f"{env.validation.final_tokens:,} for final_val_loss",
            "Model configuration",
            f"  Vocab size:      {model.vocab_size}",
            f"  Context length:  {model.context_length}",
            f"  Embedding dim:   {model.emb_dim}",
            f"  Num heads:       {model.n_heads}",
            f"  Num layers:      {model.n_layers}",
            f"  Dropout:         {model.drop_rate}",
            f"  QKV bias:        {model.qkv_bias}",
            f"  Parametrization: {model.parametrization_summary}",
            f"  Total params:    {count_parameters(env.model):,}",
        ]
    )


def describe_result(history: TrainingHistory) -> str:
    if not history.evals:
        return "Training summary: no evaluation was reached"
    last, best = history.evals[-1], history.best_eval
    final = "" if history.final_val_loss is None else f", final_val_loss {history.final_val_loss:.4f}"
    return (
        f"Training summary: final train loss {last.train_loss:.4f}, final val loss {last.val_loss:.4f}{final}, "
        f"best val loss {best.val_loss:.4f} (step {best.step})"
    )


def training_length(env: TrainingSetup) -> str:
    """``3 epochs``, or with a budget ``1,000 steps (2.5 epochs)``."""
    steps, epochs = total_steps(env), env.config.num_epochs
    if env.config.max_steps or env.config.max_tokens:
        return f"{steps:,} steps ({steps / len(env.train_loader):.3g} epochs)"
    return f"{epochs} epoch{'s' if epochs != 1 else ''}"


def processes(env: TrainingSetup) -> str:
    return f"{env.group.world_size} processes, each on " if env.group else ""


def run_description(env: TrainingSetup, mode: str, history: TrainingHistory | None = None) -> str:
    """The run's description in MLflow's UI: what was trained and, once done, how it went."""
    model = env.config.model
    lines = [
        f"**Single run**, mode `{mode}`: {count_parameters(env.model):,} parameters ({model.n_layers} layers, "
        f"{model.n_heads} heads, embedding {model.emb_dim}, context {model.context_length}; "
        f"{model.parametrization_summary}), {training_length(env)} on {processes(env)}{env.device.type} "
        f"in {env.precision}.",
        "",
    ]
    if history is None:
        lines.append("Training.")
    elif history.evals:
        best, last = history.best_eval, history.evals[-1]
        lines += [
            f"- best val loss **{best.val_loss:.4f}** at step {best.step}",
            f"- final train loss {last.train_loss:.4f}, val loss {last.val_loss:.4f} after {history.step + 1} steps",
            f"- {history.tokens_seen:,} tokens seen",
        ]
    return "\n".join(lines)


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
    options: RunOptions | None = None,
    run_name: str | None = None,
    output_dir: Path = Path("."),
    callbacks: Sequence[TrainingCallback] = (),
    group: ProcessGroup | None = None,
) -> SingleRunResult | None:
    """Check the store, ready data and model, then train inside one MLflow run.

    What it has to say (the model, the run, each evaluation through ``ConsoleReporter`` among
    ``callbacks`` if the caller wants them) goes to this module's logger; the command line shows it.
    Under torchrun (``group``) rank 0 does all that; the other processes train their shards
    beside it, untracked, and return None.
    """
    options = options or RunOptions()
    texts = {"val_data": options.val_data, "text_field": options.text_field}
    if group is not None and not group.is_main:
        train(prepare_environment(config, options.data, options.device, group=group, **texts), progress_bar=False)
        return None
    check_outputs(output_dir)
    client = connect(options.tracking_uri)
    env = prepare_environment(config, options.data, options.device, group=group, **texts)
    log.info(describe_environment(env))
    exp_id = experiment_id(client, options.experiment)
    tags = {"mode": mode}
    with tracked_run(client, exp_id, run_name, tags=tags, system_metrics=options.system_metrics) as run_id:
        log.info(f"MLflow run {run_id} started")
        log_params(client, run_id, run_params(env, {"mode": mode}))
        set_description(client, run_id, run_description(env, mode))
        with resume_hint(run_id):  # the plot is drawn before the checkpoint: on a full disk, the checkpoint says it
            history = train_tracked(env, client, run_id, callbacks, options.log_every, plot_dir=output_dir)
        log.info(f"Saved training loss plot to {output_dir / 'training_losses.png'}")
        log.info(describe_result(history))
        set_description(client, run_id, run_description(env, mode, history))
    log.info(how_to_open(client, options.experiment, run_id))
    return SingleRunResult(run_id, exp_id, history)


@contextmanager
def resume_hint(run_id: str) -> Iterator[None]:
    """On Ctrl-C or SIGTERM, name the command that continues this very run; on a full disk, say it in the
    error's own line."""
    try:
        yield
    except KeyboardInterrupt:
        log.warning(f"Continue this run with: python runner.py single --resume {run_id}")
        raise
    except OutOfSpace as exc:
        exc.then = f"`python runner.py single --resume {run_id}` continues from its last checkpoint, if it has one"
        raise


def check_outputs(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use output folder {output_dir}: {exc.strerror}") from None


def check_left_running(run: Run, force: bool) -> None:
    """Refuse to resume a RUNNING run whose process may still be training it."""
    gone, tags = holder_is_gone(run), run.data.tags
    where = f"process {tags.get('process.pid', '?')} on {tags.get('process.host', 'an unknown machine')}"
    if gone is False:
        raise UserError(
            f"MLflow run {run.info.run_id} is still RUNNING in {where}; stop it first (Ctrl-C keeps its checkpoint)"
        )
    if gone is None and not force:
        raise UserError(
            f"MLflow run {run.info.run_id} is RUNNING in {where}, which this machine cannot check; "
            "if it is gone, resume with --force"
        )
    log.info(f"MLflow run {run.info.run_id} was left RUNNING by {where}, which is gone; resuming it")


def resume_single(
    run_id: str,
    options: RunOptions | None = None,
    output_dir: Path = Path("."),
    callbacks: Sequence[TrainingCallback] = (),
    force: bool = False,
    group: ProcessGroup | None = None,
) -> SingleRunResult | None:
    """Continue a stopped run from its last checkpoint, in the same MLflow run, its steps going on.

    A run left RUNNING by a process that died without closing it (SIGKILL, the OOM killer) is
    resumed too; one left RUNNING on another machine only with ``force``, as this one cannot tell.
    Under torchrun (``group``) every process reads the checkpoint; rank 0 alone checks and logs the run.
    The run's own texts are read again; of ``options`` only the device, logging and store apply.
    """
    options = options or RunOptions()
    main = group is None or group.is_main
    if main:
        check_outputs(output_dir)
    client = connect(options.tracking_uri)
    checkpoint = download_checkpoint(client, run_id)  # also: the run exists and has a checkpoint
    run = client.get_run(run_id)
    if main and run.info.status == "RUNNING":
        check_left_running(run, force)
    config = TrainingConfig.from_dict(checkpoint["config"])
    params = run.data.params
    env = prepare_environment(
        config,
        values_of(params.get("data_source")),
        options.device,
        group=group,
        val_data=values_of(params.get("val_data_source")),
        text_field=params.get("text_field", DEFAULT_TEXT_FIELD),
    )
    if (env.tokens.sha256, env.tokens.val_sha256) != (params.get("data_sha256"), params.get("val_data_sha256")):
        raise UserError(f"the training or validation text of run {run_id} has changed since; cannot resume")
    try:
        history = restore_training(env, checkpoint)
    except (KeyError, RuntimeError, ValueError) as exc:  # saved by an older version, or for another model
        raise UserError(f"the checkpoint of run {run_id} cannot be resumed ({one_line(exc)})") from None
    steps = total_steps(env)
    if history.step + 1 >= steps:
        raise UserError(f"MLflow run {run_id} already trained all {steps} steps; nothing to resume")
    if not main:
        train(env, progress_bar=False, history=history)
        return None
    log.info(describe_environment(env))
    log.info(f"Resuming MLflow run {run_id} after step {history.step} of {steps}")
    with tracked_run(client, run.info.experiment_id, None, run_id=run_id, system_metrics=options.system_metrics):
        client.set_tag(run_id, "resumed_after_step", str(history.step))
        with resume_hint(run_id):
            history = train_tracked(
                env, client, run_id, callbacks, options.log_every, plot_dir=output_dir, history=history
            )
        log.info(describe_result(history))
        set_description(client, run_id, run_description(env, run.data.params.get("mode", "resumed"), history))
    return SingleRunResult(run_id, run.info.experiment_id, history)
