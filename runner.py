"""Command line: train one GPT (``single``), search hyperparameters (``sweep``), show the best trial (``best``).

This module only parses options and calls ``tracking`` and ``sweeps``; every rule lives there or in ``gpt``.
Process-wide settings (log levels, the allocator, TF32, matplotlib's backend) come from ``process_setup``,
which this module, the spawned sweep workers and the benchmarks call; ``main`` installs the Ctrl-C and
SIGTERM handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gpt.config import DEVICES, MODES, STRATEGIES, flag_settings, read_config_file, resolve_config
from gpt.corpus import DEFAULT_TEXT_FIELD
from gpt.errors import UserError
from gpt.interrupt import exit_status, stop_signals_remembered, stopped_by
from process_setup import (
    exit_without_collecting,
    prepare_sweep_process,
    prepare_sweep_worker,
    prepare_training_process,
    quiet_mlflow,
    quiet_optuna,
)
from sweeps import (
    DEFAULT_CONFIRM,
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_KEEP_CHECKPOINTS,
    DEFAULT_STORAGE_RETRY_S,
    DEFAULT_TRIALS,
    GRACE_BEATS,
    PRUNERS,
    SAMPLERS,
)

TRACKING_URI_OPTION = click.option(
    "--tracking-uri", default=None, help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db]."
)
STORAGE_OPTION = click.option(
    "--storage",
    default=None,
    envvar="GPT_RUNNER_STORAGE",  # keeps a database password out of `ps` and shell history
    help="Optuna RDB URL or journal file [default: $GPT_RUNNER_STORAGE, else optuna-journal.log beside mlflow.db].",
)

RUN_OPTIONS = [
    click.option(
        "--data",
        multiple=True,
        help="Training corpus: a text file, a folder of them, a glob, a .jsonl/.json file of records or an "
        "http(s) URL; repeat it for several [default: The Verdict].",
    ),
    click.option(
        "--val-data",
        multiple=True,
        help="Validation corpus of its own, in the same forms [default: the last ~10% of --data, "
        "whole documents when it has several].",
    ),
    click.option(
        "--text-field",
        default=DEFAULT_TEXT_FIELD,
        show_default=True,
        help="The field of each JSON record that holds its document.",
    ),
    click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True),
    click.option(
        "--log-every",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Log the batch loss every N steps.",
    ),
    click.option(
        "--system-metrics/--no-system-metrics",
        default=True,
        show_default=True,
        help="Log CPU, memory and GPU use as system/* metrics of each run.",
    ),
    click.option("--experiment", default=None, help="MLflow experiment [default: gpt-from-scratch]."),
    TRACKING_URI_OPTION,
]


def config_option(name: str, kind: type, setting: dict):
    """The flag of one ``TrainingConfig``/``ModelConfig`` setting: its name, type, range and help come
    from the field's ``setting``; it defaults to None, so the preset and the config file keep theirs."""
    flag = "--" + name.replace("_", "-")
    if kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=setting["help"])
    if setting["choices"]:
        kind = click.Choice(setting["choices"])
    elif kind is int:
        kind = click.IntRange(min=setting["minimum"])
    elif kind is float and setting["minimum"] is not None:
        kind = click.FloatRange(min=setting["minimum"])
    return click.option(flag, name, type=kind, default=None, help=setting["help"])


def config_options(command):
    """A flag for each training and model setting, in the order the dataclasses declare them."""
    for name, kind, setting in reversed(flag_settings()):
        command = config_option(name, kind, setting)(command)
    return command


def run_options(command):
    """The options ``single`` and ``sweep`` share: data, device and tracking."""
    for option in reversed(RUN_OPTIONS):
        command = option(command)
    return command


@click.group()
def cli() -> None:
    """Train small GPT models from scratch and sweep their hyperparameters, every run tracked in MLflow."""


@cli.command()
@click.option("--mode", type=click.Choice(MODES), default="quick", show_default=True, help="Preset to start from.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML or JSON settings (custom_params shape)."
)
@config_options
@click.option("--run-name", help="MLflow run name.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("."), help="Where the loss plot goes.")
@click.option("--resume", "resume_run", metavar="RUN_ID", help="Continue a stopped run from its last checkpoint.")
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: take over a run left RUNNING on another machine whose process is gone.",
)
@run_options
def single(
    mode,
    config_file,
    data,
    val_data,
    text_field,
    device,
    log_every,
    system_metrics,
    experiment,
    tracking_uri,
    run_name,
    output_dir,
    resume_run,
    force,
    **flags,
) -> None:
    """Train one GPT-2-style model from scratch as one MLflow run."""
    from gpt.device import choose_device
    from gpt.distributed import join_torchrun_group, leave_group
    from tracking.single import resume_single, run_single
    from tracking.store import DEFAULT_EXPERIMENT

    prepare_training_process()
    if resume_run:
        given = [f"--{name.replace('_', '-')}" for name, value in flags.items() if value is not None]
        given += [
            name
            for name, value in (("--config", config_file), ("--data", data), ("--val-data", val_data),
                                ("--run-name", run_name))
            if value
        ]  # fmt: skip
        if given:
            raise click.UsageError(f"--resume continues the run's own settings; drop {', '.join(given)}")
    elif force:
        raise click.UsageError("--force goes with --resume RUN_ID")
    else:
        file_values = read_config_file(config_file) if config_file else None
        overrides = {name: value for name, value in flags.items() if value is not None}
        config = resolve_config(mode, file_values, overrides)
    group = join_torchrun_group(choose_device(device)[0])  # None unless started by torchrun
    try:
        if resume_run:
            resume_single(resume_run, device, log_every, tracking_uri, output_dir, system_metrics, force, group)
            return
        run_single(
            config,
            mode,
            data or None,
            device,
            log_every,
            experiment or DEFAULT_EXPERIMENT,
            tracking_uri,
            run_name,
            output_dir,
            system_metrics=system_metrics,
            group=group,
            val_data=val_data or None,
            text_field=text_field,
        )
    finally:
        leave_group()


@cli.command()
@click.option(
    "--space",
    "space_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Search space YAML [default: sweeps/default.yaml].",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=DEFAULT_TRIALS,
    show_default=True,
    help="Finished trials the study should hold.",
)
@click.option("--study", default=None, help="Optuna study name [default: sweep-<space file name>].")
@STORAGE_OPTION
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the study; they split the cores.",
)
@click.option("--sampler", type=click.Choice(SAMPLERS), default=None, help="Overrides the space file's.")
@click.option("--pruner", type=click.Choice(PRUNERS), default=None, help="Overrides the space file's.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop starting trials after this many seconds.",
)
@click.option("--seed", type=int, default=None, help="Sampler seed; overrides the space file's.")
@click.option(
    "--keep-checkpoints",
    type=click.IntRange(min=0),
    default=DEFAULT_KEEP_CHECKPOINTS,
    show_default=True,
    help="Keep checkpoints of the best K trials (until confirmations end, of the --confirm best too).",
)
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=DEFAULT_HEARTBEAT_S,
    show_default=True,
    help=f"Seconds between a worker's heartbeats; a trial silent for {GRACE_BEATS} beats is failed and retried.",
)
@click.option(
    "--storage-retry-s",
    type=click.IntRange(min=0),
    default=DEFAULT_STORAGE_RETRY_S,
    show_default=True,
    help="Seconds to wait for a database storage that stops answering mid-sweep (a restart, a failover) "
    "before stopping with one line; the same command then resumes.",
)
@click.option(
    "--confirm",
    type=click.IntRange(min=0),
    default=DEFAULT_CONFIRM,
    show_default=True,
    help="After the search, train the K best configurations again with other seeds (0: off); "
    "best, its export and the registered model then go by the mean.",
)
@click.option(
    "--confirm-seeds",
    type=click.IntRange(min=1),
    default=DEFAULT_CONFIRM_SEEDS,
    show_default=True,
    help="Other seeds per confirmed configuration.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved space and base config, then exit.")
@run_options
def sweep(
    space_file,
    trials,
    study,
    storage,
    workers,
    sampler,
    pruner,
    timeout,
    seed,
    keep_checkpoints,
    data,
    val_data,
    text_field,
    device,
    log_every,
    heartbeat,
    storage_retry_s,
    confirm,
    confirm_seeds,
    dry_run,
    system_metrics,
    experiment,
    tracking_uri,
) -> None:
    """Search hyperparameters with Optuna; each trial is an MLflow child run of the study's parent run."""
    from sweeps.settings import SweepSettings, default_study_name
    from sweeps.space import DEFAULT_SPACE
    from sweeps.storage import default_storage
    from sweeps.sweep import run_sweep
    from tracking.store import DEFAULT_EXPERIMENT, resolve_tracking_uri

    space_file = space_file or DEFAULT_SPACE
    tracking_uri = resolve_tracking_uri(tracking_uri)
    settings = SweepSettings(
        space_path=space_file,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        study_name=study or default_study_name(space_file),
        storage=storage or default_storage(tracking_uri),
        tracking_uri=tracking_uri,
        experiment=experiment or DEFAULT_EXPERIMENT,
        data=data or None,
        val_data=val_data or None,
        text_field=text_field,
        device=device,
        trials=trials,
        timeout=timeout,
        keep_checkpoints=keep_checkpoints,
        log_every=log_every,
        workers=workers,
        heartbeat_s=heartbeat,
        storage_retry_s=storage_retry_s,
        system_metrics=system_metrics,
        confirm=confirm,
        confirm_seeds=confirm_seeds,
    )
    prepare_sweep_process()
    run_sweep(settings, worker_setup=prepare_sweep_worker, dry_run=dry_run)


@cli.command()
@click.option("--study", required=True, help="Optuna study name.")
@STORAGE_OPTION
@TRACKING_URI_OPTION
@click.option("--export", type=click.Path(path_type=Path), default=None, help="Write the best trial's config here.")
def best(study, storage, tracking_uri, export) -> None:
    """Show a study's best trial; --export writes a config that `single --config` reproduces."""
    from sweeps.report import describe_best, export_best
    from sweeps.storage import default_storage, load_study
    from tracking.store import resolve_tracking_uri

    quiet_optuna()
    loaded = load_study(study, storage or default_storage(resolve_tracking_uri(tracking_uri)))
    click.echo(describe_best(loaded))
    if export:
        click.echo(f"Wrote {export_best(loaded, export)}; rerun it with: python runner.py single --config {export}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option("--port", type=int, default=5000, show_default=True)
@TRACKING_URI_OPTION
def ui(host, port, tracking_uri) -> None:
    """Browse every run and trial: MLflow's UI on the store the runner writes to."""
    from tracking.store import connect
    from tracking.ui import serve_ui

    serve_ui(connect(tracking_uri).tracking_uri, host, port)


@cli.command()
@click.option("--run-id", help="MLflow run whose checkpoint to load.")
@click.option("--study", help="Or: an Optuna study, for its best trial's run.")
@STORAGE_OPTION
@click.option("--prompt", default="Every effort moves you", show_default=True)
@click.option("--max-new-tokens", type=int, default=50, show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default="greedy", show_default=True)
@click.option("--top-k", type=int, help="Tokens to sample from with top-k [default: 50].")
@click.option("--top-p", type=float, help="Probability mass to sample from with top-p [default: 0.9].")
@click.option("--temperature", type=float, help="Sampling temperature for top-k and top-p [default: 1.0].")
@click.option("--seed", type=int, help="Seed for sampling, for repeatable text.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@TRACKING_URI_OPTION
def generate(
    run_id, study, storage, prompt, max_new_tokens, strategy, top_k, top_p, temperature, seed, device, tracking_uri
) -> None:
    """Print a prompt and its continuation by a trained run's model."""
    from gpt.generation import SamplingSettings
    from tracking.models import sample_from_run

    if (run_id is None) == (study is None):
        raise click.UsageError("give exactly one of --run-id and --study")
    settings = SamplingSettings.for_strategy(strategy, top_k, top_p, temperature, max_new_tokens)
    if study:
        from sweeps.storage import default_storage, load_study
        from sweeps.study_runs import best_run_id
        from tracking.store import resolve_tracking_uri

        quiet_optuna()
        run_id = best_run_id(load_study(study, storage or default_storage(resolve_tracking_uri(tracking_uri))))
    click.echo(sample_from_run(tracking_uri, run_id, prompt, settings, seed, device))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one line and status 2, Ctrl-C with 130 and SIGTERM with 143."""
    quiet_mlflow()
    with stop_signals_remembered():
        try:
            cli.main(args=argv, prog_name="runner.py", standalone_mode=False)
        except (click.exceptions.Abort, KeyboardInterrupt):  # click turns KeyboardInterrupt into Abort
            click.echo(
                f"Stopped by {stopped_by()}: open MLflow runs are marked KILLED. A single run keeps its last "
                "checkpoint (`runner.py single --resume RUN_ID` continues it); the same sweep command resumes a sweep.",
                err=True,
            )
            return exit_status()
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            return 0
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            return 2 if isinstance(exc, click.UsageError) else exc.exit_code
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            return 2
    return 0


def main_entry() -> None:
    """The ``gpt-runner`` console script, and ``python runner.py``: a whole process, which ends sooner
    without the interpreter's last collections (``main`` alone is also called in-process by tests)."""
    exit_without_collecting()
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
