"""What a sweep was asked to do, as plain values a spawned worker process can receive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeps.recovery import DEFAULT_HEARTBEAT_S
from sweeps.space import SearchSpace


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

    def load_space(self) -> SearchSpace:
        return SearchSpace.load(self.space_path).with_options(self.sampler, self.pruner, self.seed)
