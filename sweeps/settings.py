"""What a sweep was asked to do, as plain values a spawned worker process can receive."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpt.config import check_settings, setting
from gpt.errors import ConfigError
from sweeps import (
    DEFAULT_CONFIRM,
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_KEEP_CHECKPOINTS,
    DEFAULT_STORAGE_RETRY_S,
    DEFAULT_TRIALS,
    GRACE_BEATS,
    JOURNAL_NAME,
    PRUNERS,
    SAMPLERS,
)
from sweeps.clock import Deadline, parse_duration
from tracking.run_options import RunOptions

if TYPE_CHECKING:
    from sweeps.space import SearchSpace


def default_study_name(space_path: str | Path) -> str:
    return f"sweep-{Path(space_path).stem}"


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs to join the sweep; plain values, so it pickles.

    Declared once: ``runner.py sweep`` builds a flag from each ``setting`` here (its help, range and
    default), and ``__post_init__`` checks a value given from Python the same way, one ``ConfigError``
    line. What a sweep shares with a single run (texts, device, logging, store) is ``run``.
    """

    space_path: Path
    study_name: str
    storage: str
    trials: int | None = setting(
        DEFAULT_TRIALS,
        "Finished trials the study should hold; with --time-budget and no --trials, as many as the budget holds.",
        minimum=1,
    )
    workers: int = setting(1, "Processes sharing the study; they split the cores.", minimum=1)
    sampler: str | None = setting(None, "Overrides the space file's.", choices=SAMPLERS)
    pruner: str | None = setting(None, "Overrides the space file's.", choices=PRUNERS)
    timeout: float | None = setting(None, "Stop starting trials after this many seconds (> 0).")
    time_budget: float | None = setting(
        None,
        "Plan the search to end within this time, confirmations included: seconds, or 90m, 1h30m. A trial "
        "starts only while the time left holds it and the confirmations after it.",
        parse=parse_duration,
    )
    seed: int | None = setting(None, "Sampler seed; overrides the space file's.")
    keep_checkpoints: int = setting(
        DEFAULT_KEEP_CHECKPOINTS,
        "Keep checkpoints of the best K trials (until confirmations end, of the --confirm best too).",
        minimum=0,
    )
    heartbeat_s: int = setting(
        DEFAULT_HEARTBEAT_S,
        f"Seconds between a worker's heartbeats; a trial silent for {GRACE_BEATS} beats is failed and retried.",
        minimum=1,
        flag="--heartbeat",
    )
    storage_retry_s: int = setting(
        DEFAULT_STORAGE_RETRY_S,
        "Seconds to wait for a database storage that stops answering mid-sweep (a restart, a failover) "
        "before stopping with one line; the same command then resumes.",
        minimum=0,
    )
    confirm: int = setting(
        DEFAULT_CONFIRM,
        "After the search, train the K best configurations again with other seeds (0: off); "
        "best, its export and the registered model then go by the mean.",
        minimum=0,
    )
    confirm_seeds: int = setting(DEFAULT_CONFIRM_SEEDS, "Other seeds per confirmed configuration.", minimum=1)
    warm_start: str | None = setting(
        None,
        "An earlier study whose finished trials that fit this space join this one as done: they inform the "
        "sampler and pruner, and are not trained again nor counted toward --trials. For a new study only.",
    )
    warm_start_storage: str | None = setting(
        None, "The Optuna storage of the --warm-start study [default: this sweep's]."
    )
    warm_start_top: int = setting(
        0,
        "With --warm-start: also train the earlier study's best K configurations first, where this space "
        "holds them and they did not join (its base changed).",
        minimum=0,
    )
    run: RunOptions = field(default_factory=RunOptions)
    deadline: Deadline | None = None  # set from time_budget when the sweep starts (sweeps.sweep.run_sweep)

    def __post_init__(self) -> None:
        check_settings(self)
        for name in ("timeout", "time_budget"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0 seconds (got {value})")
        if self.warm_start is None and (self.warm_start_storage is not None or self.warm_start_top):
            raise ConfigError("warm_start_storage and warm_start_top go with a warm_start study")
        if self.trials is None and self.time_budget is None:
            raise ConfigError("trials may be left unset only with a time_budget, which then ends the sweep")
        if self.run.tracking_uri is None:
            raise ConfigError("a sweep needs its MLflow store: run.tracking_uri is not set")

    @property
    def parallel(self) -> bool:
        """Trials run side by side: several workers here, or a database other machines may share."""
        return self.workers > 1 or "://" in self.storage

    @property
    def checkpoints_while_searching(self) -> int:
        """Checkpoints kept until confirmations have chosen the best: any of the ``confirm`` may win."""
        return max(self.keep_checkpoints, self.confirm if self.confirm_seeds else 0)

    @classmethod
    def in_folder(cls, folder: str | Path, space_path: Path, trials: int | None, **options: Any) -> SweepSettings:
        """A sweep whose journal file and MLflow SQLite store both live in ``folder``, the rest at the
        command line's defaults unless given (a sweep setting or a ``RunOptions`` field, by name): for
        benchmarks and notebooks."""
        folder = Path(folder)
        run_names = {f.name for f in fields(RunOptions)}
        run = RunOptions(
            **{name: options.pop(name) for name in run_names & options.keys()},
            tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        )
        located = {"study_name": default_study_name(space_path), "storage": str(folder / JOURNAL_NAME)}
        return cls(space_path=Path(space_path), trials=trials, run=run, **{**located, **options})

    def load_space(self) -> SearchSpace:
        from sweeps.space import SearchSpace  # Optuna loads here, not when the command line starts

        return SearchSpace.load(self.space_path).with_options(self.sampler, self.pruner, self.seed)

    def with_texts_of(self, space: SearchSpace) -> SweepSettings:
        """The texts to train and validate on: the command line's, else the space's base's."""
        texts = replace(self.run, data=self.run.data or space.data, val_data=self.run.val_data or space.val_data)
        return replace(self, run=texts)
