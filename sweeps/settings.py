"""What a sweep was asked to do, as plain values a spawned worker process can receive."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gpt.corpus import DEFAULT_TEXT_FIELD
from sweeps import (
    DEFAULT_CONFIRM,
    DEFAULT_CONFIRM_SEEDS,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_KEEP_CHECKPOINTS,
    DEFAULT_STORAGE_RETRY_S,
    DEFAULT_TRIALS,
)
from sweeps.space import SearchSpace
from tracking.store import DEFAULT_EXPERIMENT


def default_study_name(space_path: str | Path) -> str:
    return f"sweep-{Path(space_path).stem}"


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs to join the sweep; plain values, so it pickles.

    The defaults are the command line's. The command line checks the ranges (click types); code that
    builds one checks its own.
    """

    space_path: Path
    study_name: str
    storage: str
    tracking_uri: str
    trials: int = DEFAULT_TRIALS
    sampler: str | None = None  # None: the space file's
    pruner: str | None = None
    seed: int | None = None
    experiment: str = DEFAULT_EXPERIMENT
    data: tuple[str, ...] | None = None  # None: the space's base's, else The Verdict
    val_data: tuple[str, ...] | None = None
    text_field: str = DEFAULT_TEXT_FIELD
    device: str = "auto"
    timeout: float | None = None
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS
    log_every: int = 1
    workers: int = 1
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    storage_retry_s: int = DEFAULT_STORAGE_RETRY_S  # how long a database storage that went away is waited for
    system_metrics: bool = True
    confirm: int = DEFAULT_CONFIRM
    confirm_seeds: int = DEFAULT_CONFIRM_SEEDS

    @property
    def parallel(self) -> bool:
        """Trials run side by side: several workers here, or a database other machines may share."""
        return self.workers > 1 or "://" in self.storage

    @property
    def checkpoints_while_searching(self) -> int:
        """Checkpoints kept until confirmations have chosen the best: any of the ``confirm`` may win."""
        return max(self.keep_checkpoints, self.confirm if self.confirm_seeds else 0)

    @classmethod
    def in_folder(cls, folder: str | Path, space_path: Path, trials: int, **options: Any) -> SweepSettings:
        """A sweep whose journal file and MLflow SQLite store both live in ``folder``, the rest at the
        command line's defaults unless given: for benchmarks and notebooks."""
        folder = Path(folder)
        located = {
            "study_name": default_study_name(space_path),
            "storage": str(folder / "optuna-journal.log"),
            "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        }
        return cls(space_path=Path(space_path), trials=trials, **{**located, **options})

    def load_space(self) -> SearchSpace:
        return SearchSpace.load(self.space_path).with_options(self.sampler, self.pruner, self.seed)

    def with_texts_of(self, space: SearchSpace) -> SweepSettings:
        """The texts to train and validate on: the command line's, else the space's base's."""
        return replace(self, data=self.data or space.data, val_data=self.val_data or space.val_data)
