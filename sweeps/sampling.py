"""Samplers that never repeat a point, and the pruners.

Each trial's sampler is seeded from the space's seed and the trial's number. The storage
hands out trial numbers, so they are unique across workers and machines: a resumed study,
a second worker and a second machine all draw new points, and the same command run from
scratch draws the same sequence again. On top of that a proposal that equals a point the
study already holds (finished, running, waiting, or failed in training) is drawn again; in a finite
space, after ``TRIES`` such draws, a free point is picked at random instead. A point whose parameters
break a limit of the space (``constraints:``) is drawn again the same way, so it is never trained; the
limits measured later reach TPE and GP as the trial's constraints (``Trial.set_constraint``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from sweeps.optuna_internals import all_trials, queued_params
from sweeps.sampling_view import OutsideTrial, sampling_view
from sweeps.space import SearchSpace
from sweeps.trial_states import LIVE_STATES

REPORT_POINTS = 10  # the pruner compares trials at tenths of their training
# ... and may stop one only in its first half: benchmarks.pruning_signal found later reports rank trials no
# better than the third's do (Spearman 0.9-0.99 from 2/10 on), and a late prune saves little of a trial.
LAST_PRUNING_POINT = REPORT_POINTS // 2
TRIES = 20
FAIL_REASON_ATTR = "fail_reason"  # set on a trial whose training failed (NaN loss, out of memory, bad config)

Point = tuple[Any, ...]


def trial_seed(space_seed: int | None, number: int) -> int | None:
    """Trial ``number``'s own sampler seed; None (fresh randomness) when the space has no seed."""
    if space_seed is None:
        return None
    return (space_seed * 1_000_003 + number) % 2**32


def point_of(trial: FrozenTrial, names: Sequence[str]) -> Point | None:
    """The trial's values of ``names`` in that order; a queued trial's are its fixed params."""
    params = trial.params or queued_params(trial)
    if not all(name in params for name in names):
        return None  # not sampled yet
    return tuple(params[name] for name in names)


def holds_its_point(trial: FrozenTrial) -> bool:
    """Finished, running and waiting trials hold their point. A failed one holds it only when training
    failed there (so a NaN point is not drawn again), not when it was interrupted or lost."""
    return trial.state in LIVE_STATES or FAIL_REASON_ATTR in trial.user_attrs


def held_points(
    study: optuna.Study, names: Sequence[str], live_only: bool = False, excluding: int | None = None
) -> dict[Point, int]:
    """Each point the study's trials (but trial ``excluding``) hold, with the lowest number holding it."""
    held: dict[Point, int] = {}
    for trial in all_trials(study):
        if trial.number == excluding or not (trial.state in LIVE_STATES if live_only else holds_its_point(trial)):
            continue
        point = point_of(trial, names)
        if point is not None and held.get(point, trial.number) >= trial.number:
            held[point] = trial.number
    return held


def free_points(study: optuna.Study, space: SearchSpace, excluding: int | None = None) -> list[Point] | None:
    """The points of a finite space within its limits on parameters and memory that no trial (other than number
    ``excluding``) holds; None if endless."""
    points = space.all_points()
    if points is None:
        return None
    held = held_points(study, space.names, excluding=excluding)
    return [
        point
        for point in points
        if point not in held and (not space.limits or space.point_limits_broken(point) is None)
    ]


def repeated_trial(study: optuna.Study, trial: FrozenTrial | optuna.Trial, space: SearchSpace) -> int | None:
    """The number of a lower-numbered live trial with the same point as ``trial``, if any.

    Two workers that sample at the same moment can still pick the same point; the lower
    number keeps it, so exactly one of them trains.
    """
    point = tuple(trial.params[name] for name in space.names)
    holder = held_points(study, space.names, live_only=True).get(point)
    return holder if holder is not None and holder < trial.number else None


class DistinctSampler(BaseSampler):
    """Optuna's TPE or random sampling, seeded per trial, never proposing a point the study holds.

    ``grid`` is not Optuna's ``GridSampler``: it picks a free point of the finite space at random (seeded),
    so it visits every point once, in an order fixed by the seed. With
    ``parallel`` (several workers or machines) TPE counts running trials as bad ones (its
    ``constant_liar``), so that trials started side by side do not crowd one region, as Optuna advises.
    ``outside``: a warm start's earlier trials outside the space's ranges, which TPE and GP read through a
    ``sweeps.sampling_view`` to know the region beside them.
    """

    def __init__(self, space: SearchSpace, parallel: bool = False, outside: Sequence[OutsideTrial] = ()) -> None:
        self.space, self.parallel, self.outside = space, parallel, tuple(outside)
        self.points = space.all_points()
        self._inner: dict[int, BaseSampler] = {}
        self._chosen: dict[int, dict[str, Any]] = {}

    def _inner_sampler(self, seed: int | None) -> BaseSampler:
        """``tpe-multivariate`` (the default, and Optuna 5's) models the params jointly, ``tpe`` each alone;
        ``gp`` is Optuna's ``GPSampler``. ``benchmarks.sweep_strategies`` compared them at equal wall time
        (docs/performance.md): multivariate TPE and GP picked better models than univariate TPE on both
        repeats; multivariate TPE is the default as it also spreads parallel workers (constant liar; Optuna 5.1's GP
        reads running trials too, Optuna 4's does not)."""
        if self.space.sampler in ("tpe", "tpe-multivariate"):
            multivariate = self.space.sampler == "tpe-multivariate"
            return optuna.samplers.TPESampler(seed=seed, constant_liar=self.parallel, multivariate=multivariate)
        if self.space.sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def allowed(self, point: Point, held: set[Point]) -> bool:
        """Not held by the study, and within the space's limits on what the config decides (parameters, memory)."""
        if point in held:
            return False
        return not self.space.limits or self.space.point_limits_broken(point) is None

    def _draw(
        self, study: optuna.Study, trial: FrozenTrial, inner: BaseSampler, seen: tuple[optuna.Study, FrozenTrial]
    ) -> Point:
        """One point from ``inner``: the params it models jointly (multivariate TPE, GP, once enough trials
        have completed) from its relative sampling of ``seen`` (the study and the trial, or their
        ``sampling_view``), the others one by one from the study."""
        view, view_trial = seen
        relative = inner.sample_relative(view, view_trial, inner.infer_relative_search_space(view, view_trial))
        return tuple(
            relative[p.name] if p.name in relative else inner.sample_independent(study, trial, p.name, p.distribution)
            for p in self.space.params
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Choose the trial's whole point now, before the objective asks for any value: draw from the
        inner sampler (seeded by the trial's number) until the point is one the study does not hold,
        else, in a finite space, pick a free point; a queued retry keeps its own."""
        seed = trial_seed(self.space.seed, trial.number)
        inner = self._inner[trial.number] = self._inner_sampler(seed)
        inner.before_trial(study, trial)
        if point_of(trial, self.space.names) is not None:
            return  # a queued trial (a retry) keeps its own point
        held = held_points(study, self.space.names)
        # A listable grid goes straight to a free point; any other space draws (and redraws repeats) first.
        tries = 0 if self.space.sampler == "grid" and self.points is not None else TRIES
        seen = sampling_view(study, trial, self.space, self.outside) if self.outside and tries else (study, trial)
        for _ in range(tries):
            point = self._draw(study, trial, inner, seen)
            if self.allowed(point, held):
                self._chosen[trial.number] = dict(zip(self.space.names, point, strict=True))
                return
        free = [point for point in self.points or () if self.allowed(point, held)]
        if free:
            point = random.Random(seed).choice(free)
            self._chosen[trial.number] = dict(zip(self.space.names, point, strict=True))
        # else: nothing new is left to propose; the objective sees that and stops the sweep

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}  # every point is chosen whole in before_trial

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        chosen = self._chosen.get(trial.number, {})
        if param_name in chosen:
            return chosen[param_name]
        return self._inner[trial.number].sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._chosen.pop(trial.number, None)
        inner = self._inner.pop(trial.number, None)
        if inner is not None:
            inner.after_trial(study, trial, state, values)


def make_pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if space.pruner == "pareto":
        return optuna.pruners.NopPruner()  # the objective applies sweeps.pareto's rule itself
    if space.pruner == "hyperband":
        # rungs at 2, 4 (and 8, past LAST_PRUNING_POINT, never asked): at 1/10 the subset's ranking is weak
        # (Spearman 0.78 with final_val_loss), from 2/10 on it is 0.9 or better (benchmarks.pruning_signal)
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource=REPORT_POINTS, reduction_factor=2)
    return optuna.pruners.NopPruner()
