"""Command line: train one GPT (``single``), search hyperparameters (``sweep``), show the best trial (``best``).

This module only parses options and calls ``tracking`` and ``sweeps``; every rule lives there or in ``gpt``.
Process-wide settings (log levels, the allocator, TF32, matplotlib's backend) come from ``process_setup``,
which this module, the spawned sweep workers and the benchmarks call; ``main`` installs the Ctrl-C and
SIGTERM handlers.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from gpt.config import (
    DEFAULT_TOP_K,
    DEFAULT_TOP_P,
    DEVICES,
    MODES,
    SCALAR_TYPES,
    STRATEGIES,
    ModelConfig,
    TrainingConfig,
    read_config_file,
    resolve_config,
)
from gpt.disk_space import is_out_of_space
from gpt.errors import MachineFault, UserError, one_line
from gpt.interrupt import exit_status, stop_signals_remembered, stopped_by
from process_setup import (
    exit_without_collecting,
    prepare_sweep_process,
    prepare_sweep_worker,
    prepare_training_process,
    quiet_mlflow,
    quiet_optuna,
    show_package_logs,
)
from sweeps.settings import SweepSettings
from tracking.run_options import RunOptions

STORAGE_OPTION = click.option(
    "--storage",
    default=None,
    envvar="GPT_RUNNER_STORAGE",  # keeps a database password out of `ps` and shell history
    help="Optuna RDB URL or journal file [default: $GPT_RUNNER_STORAGE, else optuna-journal.log beside mlflow.db].",
)


class ParsedText(click.ParamType):
    """A flag's text read by its setting's ``parse`` (a duration: ``1h30m``); its ``ValueError`` is the usage line."""

    def __init__(self, parse: Any) -> None:
        self.parse, self.name = parse, parse.__name__.removeprefix("parse_")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def setting_option(f: dataclasses.Field, with_default: bool = True):
    """The flag of one declared ``setting`` (``gpt.config.setting``): its name, type, range, choices and
    help come from the field. ``with_default=False`` makes it default to None, so that a preset and a
    config file keep their own values unless the flag is given."""
    meta = f.metadata
    flag = meta["flag"] if isinstance(meta["flag"], str) else "--" + f.name.replace("_", "-")
    default = f.default if with_default else None
    shown = {"default": default, "show_default": default is not None, "help": meta["help"]}
    type_name = f.type.removesuffix(" | None")
    if type_name == "bool":
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, **shown)
    if type_name.startswith("tuple["):  # a repeatable flag
        return click.option(flag, f.name, multiple=True, help=meta["help"])
    kind: Any = SCALAR_TYPES[type_name]
    if meta["parse"]:
        kind = ParsedText(meta["parse"])
    elif meta["choices"]:
        kind = click.Choice(meta["choices"])
    elif kind is int and meta["minimum"] is not None:
        kind = click.IntRange(min=meta["minimum"])
    elif kind is float and meta["minimum"] is not None:
        kind = click.FloatRange(min=meta["minimum"])
    return click.option(flag, f.name, type=kind, **shown)


def flag_fields(*classes: type) -> list[dataclasses.Field]:
    """The fields of ``classes`` that are flags, in the order they are declared."""
    return [f for cls in classes for f in dataclasses.fields(cls) if f.metadata.get("flag")]


def setting_options(*classes: type, with_default: bool = True):
    """A flag for each declared setting of ``classes``."""

    def decorate(command):
        for f in reversed(flag_fields(*classes)):
            command = setting_option(f, with_default)(command)
        return command

    return decorate


def taken(cls: type, values: dict[str, Any]) -> Any:
    """``cls`` built from the values of its flags, which leave ``values``; checked by its ``__post_init__``."""
    return cls(**{f.name: values.pop(f.name) for f in flag_fields(cls)})


TRACKING_URI_OPTION = setting_option(next(f for f in dataclasses.fields(RunOptions) if f.name == "tracking_uri"))


@click.group()
def cli() -> None:
    """Train small GPT models from scratch and sweep their hyperparameters, every run tracked in MLflow."""


@cli.command()
@click.option("--mode", type=click.Choice(MODES), default="quick", show_default=True, help="Preset to start from.")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="YAML or JSON settings (custom_params shape)."
)
@setting_options(TrainingConfig, ModelConfig, with_default=False)
@click.option("--run-name", help="MLflow run name.")
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("."), help="Where the loss plot goes.")
@click.option("--resume", "resume_run", metavar="RUN_ID", help="Continue a stopped run from its last checkpoint.")
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: take over a run left RUNNING on another machine whose process is gone.",
)
@setting_options(RunOptions)
def single(mode, config_file, run_name, output_dir, resume_run, force, **values) -> None:
    """Train one GPT-2-style model from scratch as one MLflow run."""
    from gpt.device import choose_device
    from gpt.distributed import join_torchrun_group, leave_group
    from gpt.training import ConsoleReporter
    from tracking.single import resume_single, run_single

    prepare_training_process()
    options = taken(RunOptions, values)
    flags = {name: value for name, value in values.items() if value is not None}
    if resume_run:
        given = [f"--{name.replace('_', '-')}" for name in flags]
        given += [
            name
            for name, value in (("--config", config_file), ("--data", options.data),
                                ("--val-data", options.val_data), ("--run-name", run_name))
            if value
        ]  # fmt: skip
        if given:
            raise click.UsageError(f"--resume continues the run's own settings; drop {', '.join(given)}")
    elif force:
        raise click.UsageError("--force goes with --resume RUN_ID")
    else:
        config = resolve_config(mode, read_config_file(config_file) if config_file else None, flags)
    group = join_torchrun_group(choose_device(options.device)[0])  # None unless started by torchrun
    try:
        if resume_run:
            resume_single(resume_run, options, output_dir, [ConsoleReporter()], force, group)
        else:
            run_single(config, mode, options, run_name, output_dir, [ConsoleReporter()], group)
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
@click.option("--study", default=None, help="Optuna study name [default: sweep-<space file name>].")
@STORAGE_OPTION
@setting_options(SweepSettings)
@click.option("--dry-run", is_flag=True, help="Print the resolved space and base config, then exit.")
@setting_options(RunOptions)
def sweep(space_file, study, storage, dry_run, **values) -> None:
    """Search hyperparameters with Optuna; each trial is an MLflow child run of the study's parent run."""
    started = time.time()  # a --time-budget counts from here
    from sweeps.settings import default_study_name
    from sweeps.space import DEFAULT_SPACE
    from sweeps.storage import default_storage
    from sweeps.sweep import run_sweep
    from tracking.store import resolve_tracking_uri

    space_file = space_file or DEFAULT_SPACE
    if values["time_budget"] and click.get_current_context().get_parameter_source("trials") is ParameterSource.DEFAULT:
        values["trials"] = None  # as many as the budget holds
    options = taken(RunOptions, values)
    options = dataclasses.replace(options, tracking_uri=resolve_tracking_uri(options.tracking_uri))
    settings = SweepSettings(
        space_path=space_file,
        study_name=study or default_study_name(space_file),
        storage=storage or default_storage(options.tracking_uri),
        run=options,
        **values,
    )
    prepare_sweep_process()
    run_sweep(settings, worker_setup=prepare_sweep_worker, dry_run=dry_run, started=started)


def pick_given(ctx: click.Context, param: click.Parameter, texts: tuple[str, ...]) -> tuple:
    """``--max params=5e6``, ``--min ...`` (limits the pick must meet) or ``--weight params=1e-7`` (a price on a
    cost), each repeatable; a wrong one is a usage line."""
    from gpt.errors import ConfigError
    from sweeps.metrics import Limit, Weight

    def parse(text: str) -> Limit | Weight:
        if param.name == "weights":
            return Weight.parse_text(text)
        return Limit.parse_text(text, "max" if param.name == "at_most" else "min")

    try:
        return tuple(parse(text) for text in texts)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


PICK_OPTIONS = [
    click.option("--max", "at_most", multiple=True, callback=pick_given, metavar="METRIC=N",
                 help="Pick the best trial with METRIC at most N (e.g. params=5e6): a pick from the front."),
    click.option("--min", "at_least", multiple=True, callback=pick_given, metavar="METRIC=N",
                 help="Pick the best trial with METRIC at least N (e.g. tokens_per_second=20000)."),
    click.option("--weight", "weights", multiple=True, callback=pick_given, metavar="METRIC=W",
                 help="Pick by the loss plus W per unit of a cost (e.g. params=1e-7: 0.1 a million parameters)."),
]  # fmt: skip


def pick_options(command):
    """``--max``, ``--min`` and ``--weight``, handed to ``command`` as one ``pick`` (``sweeps.ranking.Pick``)."""

    @functools.wraps(command)
    def with_pick(*args: Any, at_most: tuple, at_least: tuple, weights: tuple, **kwargs: Any) -> Any:
        from sweeps.ranking import Pick

        return command(*args, pick=Pick(at_most + at_least, weights), **kwargs)

    for option in reversed(PICK_OPTIONS):
        with_pick = option(with_pick)
    return with_pick


@cli.command()
@click.option("--study", required=True, help="Optuna study name.")
@STORAGE_OPTION
@TRACKING_URI_OPTION
@click.option("--export", type=click.Path(path_type=Path), default=None, help="Write the best trial's config here.")
@pick_options
@click.option("--register", is_flag=True, help="Register the pick's model as gpt-<study> in MLflow's registry.")
def best(study, storage, tracking_uri, export, pick, register) -> None:
    """Show a study's best trial; --export writes a config that `single --config` reproduces."""
    from sweeps.report import describe_best, export_best
    from sweeps.storage import default_storage, load_study
    from tracking.store import resolve_tracking_uri

    quiet_optuna()
    loaded = load_study(study, storage or default_storage(resolve_tracking_uri(tracking_uri)))
    click.echo(describe_best(loaded, pick))
    if export:
        click.echo(
            f"Wrote {export_best(loaded, export, pick)}; rerun it with: python runner.py single --config {export}"
        )
    if register:
        from sweeps.sweep import register_best_model
        from tracking.store import connect

        click.echo(f"Registered {register_best_model(loaded, connect(tracking_uri), pick)}")


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
@click.option("--top-k", type=int, help=f"Tokens to sample from with top-k [default: {DEFAULT_TOP_K}].")
@click.option("--top-p", type=float, help=f"Probability mass to sample from with top-p [default: {DEFAULT_TOP_P}].")
@click.option("--temperature", type=float, help="Sampling temperature for top-k and top-p [default: 1.0].")
@click.option("--seed", type=int, help="Seed for sampling, for repeatable text.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@TRACKING_URI_OPTION
@pick_options
def generate(
    run_id, study, storage, prompt, max_new_tokens, strategy, top_k, top_p, temperature, seed, device, tracking_uri,
    pick,
) -> None:  # fmt: skip
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
        loaded = load_study(study, storage or default_storage(resolve_tracking_uri(tracking_uri)))
        run_id = best_run_id(loaded, pick)
    click.echo(sample_from_run(tracking_uri, run_id, prompt, settings, seed, device))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends with one line and status 2, a fault of the machine (a full disk) with one
    line and status 1, Ctrl-C with 130 and SIGTERM with 143."""
    quiet_mlflow()
    show_package_logs()
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
        except MachineFault as exc:
            click.echo(f"Error: {exc}", err=True)
            return 1
        except Exception as exc:
            if not is_out_of_space(exc):
                raise  # a bug: its traceback is what a report needs
            click.echo(f"Error: out of disk space ({one_line(exc)}); free some, then rerun the same command", err=True)
            return 1
    return 0


def main_entry() -> None:
    """The ``gpt-runner`` console script, and ``python runner.py``: a whole process, which ends sooner
    without the interpreter's last collections (``main`` alone is also called in-process by tests)."""
    exit_without_collecting()
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
