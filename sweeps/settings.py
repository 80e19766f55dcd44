"""What a sweep was asked to do, as plain values a spawned worker process can receive."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sweeps import DEFAULT_CONFIRM, DEFAULT_CONFIRM_SEEDS
from sweeps.recovery import DEFAULT_HEARTBEAT_S
from sweeps.space import SearchSpace
from sweeps.storage import default_study_name
from tracking.store import DEFAULT_EXPERIMENT


@dataclass(frozen=True)
class SweepSettings:
    """Everything a worker process needs to join the sweep; plain values, so it pickles.

    The command line checks the ranges (click types); code that builds one checks its own.
    """

    space_path: Path
    sampler: str | None
    pruner: str | None
    seed: int | None
    study_name: str
    storage: str
    tracking_uri: str
    experiment: str
    data: str | None
    device: str
    trials: int
    timeout: float | None
    keep_checkpoints: int
    log_every: int = 1
    workers: int = 1
    heartbeat_s: int = DEFAULT_HEARTBEAT_S
    system_metrics: bool = True
    val_data: str | None = None
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
        defaults = {
            "sampler": None,
            "pruner": None,
            "seed": None,
            "study_name": default_study_name(space_path),
            "storage": str(Path(folder) / "optuna-journal.log"),
            "tracking_uri": f"sqlite:///{Path(folder) / 'mlflow.db'}",
            "experiment": DEFAULT_EXPERIMENT,
            "data": None,
            "device": "auto",
            "timeout": None,
            "keep_checkpoints": 1,
        }
        return cls(space_path=Path(space_path), trials=trials, **{**defaults, **options})

    def load_space(self) -> SearchSpace:
        return SearchSpace.load(self.space_path).with_options(self.sampler, self.pruner, self.seed)

    def with_texts_of(self, space: SearchSpace) -> SweepSettings:
        """The texts to train and validate on: the command line's, else the space's base's."""
        return replace(self, data=self.data or space.data, val_data=self.val_data or space.val_data)
