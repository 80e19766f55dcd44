"""What a sweep can optimise and limit: a trial's loss, and what its model costs.

A space names one objective (the loss, as ever) or several (``objectives:``, the loss first, then costs),
and ``constraints:`` on any of these metrics. A cost is known at one of three moments, which decides what
the sweep can do with it:

- from the config alone (``params``, ``params_non_embedding``, ``train_memory_mb``): a point over a limit is
  never trained, nor even proposed where the sampler can avoid it;
- timed on the built model before training (``ms_per_token``): a trial over a limit stops before its first
  step, recorded as infeasible, not counted;
- measured by training (``tokens_per_second``) or after it (the losses): a trial over a limit is trained,
  ranked infeasible, kept off the front, and Optuna's constrained sampling learns from it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

from gpt.config import TrainingConfig
from gpt.cost import parameter_count, training_memory_bytes
from gpt.errors import ConfigError

LOSSES = ("final_val_loss", "best_val_loss")
FROM_CONFIG = ("params", "params_non_embedding", "train_memory_mb")
BEFORE_TRAINING = ("ms_per_token",)
BY_TRAINING = ("tokens_per_second",)
METRICS = LOSSES + FROM_CONFIG + BEFORE_TRAINING + BY_TRAINING
DIRECTIONS = ("minimize", "maximize")
BOUNDS = ("max", "min")
METRICS_ATTR = "metrics"  # trial user attribute: every cost metric the trial has measured, by name
INFEASIBLE_ATTR = "infeasible"  # trial user attribute: the limits it broke, in words
GENERATION_BATCH = 1  # ms_per_token: one sequence, its context full (the trial's max_length)


def config_metrics(config: TrainingConfig) -> dict[str, float]:
    """The costs known from a config before anything is built: parameters with the token and position tables
    (what the checkpoint stores) and without them (what each token's arithmetic pays for), and the megabytes
    of tensors one fp32 training step holds at the config's batch size and context (an estimate)."""
    return {
        "params": float(parameter_count(config.model)),
        "params_non_embedding": float(parameter_count(config.model, embeddings=False)),
        "train_memory_mb": round(training_memory_bytes(config) / 1e6, 1),
    }


@dataclass(frozen=True)
class Objective:
    """One thing the sweep optimises: a metric and its direction."""

    metric: str
    direction: str

    @classmethod
    def parse(cls, where: str, spec: Any) -> Objective:
        if not isinstance(spec, dict) or set(spec) - {"metric", "direction"}:
            raise ConfigError(f"{where} must be a mapping of metric and direction (got {spec!r})")
        metric, direction = spec.get("metric", "final_val_loss"), spec.get("direction", "minimize")
        if metric not in METRICS:
            raise ConfigError(f"{where}.metric must be one of {', '.join(METRICS)} (got {metric!r})")
        if direction not in DIRECTIONS:
            raise ConfigError(f"{where}.direction must be one of {', '.join(DIRECTIONS)} (got {direction!r})")
        return cls(metric, direction)

    def better(self, a: float, b: float) -> bool:
        """``a`` is at least as good as ``b`` in this objective's direction."""
        return a <= b if self.direction == "minimize" else a >= b


@dataclass(frozen=True)
class Limit:
    """A constraint: ``metric`` at most (``max``) or at least (``min``) ``value``."""

    metric: str
    bound: str
    value: float

    @classmethod
    def parse(cls, metric: Any, spec: Any) -> Limit:
        where = f"constraints.{metric}"
        if metric not in METRICS:
            raise ConfigError(f"{where}: no such metric (choose from {', '.join(METRICS)})")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in BOUNDS:
            raise ConfigError(f"{where} must be {{max: N}} or {{min: N}} (got {spec!r})")
        bound, value = next(iter(spec.items()))
        if isinstance(value, str):  # YAML reads 5e6 (no dot, no sign) as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}.{bound} must be a number (got {value!r})")
        return cls(metric, bound, float(value))

    @classmethod
    def parse_text(cls, text: str, bound: str) -> Limit:
        """``params=5e6`` from the command line (``best --max``/``--min``)."""
        metric, number = metric_and_number(text, f"--{bound}", "params=5e6")
        return cls.parse(metric, {bound: number})

    def violation(self, value: float) -> float:
        """How far ``value`` is past the limit: at most 0 inside it (Optuna's constraint convention)."""
        return value - self.value if self.bound == "max" else self.value - value

    def broken_by(self, metrics: dict[str, float]) -> str | None:
        """Why ``metrics`` break this limit, or None (also when the metric is not measured yet)."""
        value = metrics.get(self.metric)
        if value is None or self.violation(value) <= 0:
            return None
        return f"{self.metric} {readable(value)} breaks the limit {self.describe()}"

    def describe(self) -> str:
        return f"{self.metric} {'<=' if self.bound == 'max' else '>='} {readable(self.value)}"


@dataclass(frozen=True)
class Weight:
    """A price on a cost: ``per`` of the loss for each unit of ``metric`` in its worse direction, so that a pick
    from the front can trade loss for cost (``best --weight params=1e-7``: a million parameters are worth 0.1)."""

    metric: str
    per: float

    @classmethod
    def parse_text(cls, text: str) -> Weight:
        """``params=1e-7`` from the command line (``best --weight``)."""
        metric, per = metric_and_number(text, "--weight", "params=1e-7")
        if metric not in METRICS or metric in LOSSES:
            costs = ", ".join(m for m in METRICS if m not in LOSSES)
            raise ConfigError(f"--weight {text!r}: weigh a cost, one of {costs}")
        if not math.isfinite(per) or per < 0:
            raise ConfigError(f"--weight {text!r}: the weight must be a number >= 0")
        return cls(metric, per)

    def describe(self) -> str:
        return f"{self.metric} at {self.per:g} a unit"


def metric_and_number(text: str, option: str, example: str) -> tuple[str, float]:
    """``METRIC=NUMBER`` as given to ``option`` on the command line, split; anything else is bad input."""
    metric, _, value = text.partition("=")
    try:
        return metric.strip(), float(value)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: write METRIC=NUMBER, e.g. {example}") from None


def readable(value: float) -> str:
    """``5,000,000`` for a whole number, ``6,912.4`` or ``0.0123`` otherwise."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.6g}"


def broken_limits(limits: tuple[Limit, ...], metrics: dict[str, float]) -> str | None:
    """The limits ``metrics`` break, in words, or None."""
    broken = [reason for limit in limits if (reason := limit.broken_by(metrics))]
    return "; ".join(broken) or None
