"""Durations as people write them (``--time-budget 1h30m``) and as a progress line shows them, and the
deadline a time budget sets. Plain values, no Optuna: the command line reads them before it loads."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpt.cost import RunFlops

DURATION = re.compile(r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds in ``5400``, ``90s``, ``15m``, ``1h``, ``1h30m`` or ``1.5h``; a ``ValueError`` says what it takes."""
    match = DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration: give seconds, or a number with h, m or s (90m, 1h30m)")
    hours, minutes, seconds = (float(match[unit] or 0) for unit in "hms")
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise ValueError(f"{text!r}: a duration must be more than 0 seconds")
    return total


def duration(seconds: float) -> str:
    """``42s``, ``4m10s``, ``1h05m``: short enough for a progress line."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class ProbeRates:
    """Seconds per unit of arithmetic (``gpt.cost``) of training steps and of evaluation, timed here."""

    training: float
    evaluation: float

    def seconds(self, flops: RunFlops) -> float:
        """A run of ``flops`` at these rates: its training and its evaluations, each at its own."""
        return self.training * flops.training + self.evaluation * flops.evaluation


@dataclass(frozen=True)
class Deadline:
    """When a sweep with a time budget must have ended (wall-clock, so spawned workers share it), and the
    rates timed before any trial finished (``sweeps.time_budget.probe_rates``)."""

    ends_at: float  # time.time()
    budget_s: float
    probe: ProbeRates

    @classmethod
    def starting_now(cls, budget_s: float, probe: ProbeRates, started: float) -> Deadline:
        """The budget counted from ``started`` (``time.time()`` when the command began)."""
        return cls(started + budget_s, budget_s, probe)

    def left(self) -> float:
        return self.ends_at - time.time()

    def describe_left(self) -> str:
        return f"{duration(max(0.0, self.left()))} of the {duration(self.budget_s)} budget left"
