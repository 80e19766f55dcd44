"""Admission: whether a trial Optuna has just asked for may train, decided before it does.

Optuna has no hook between ``ask`` and the objective, so the objective's first call is ``admit``: a trial
beyond the ``--trials`` the study should hold, in a space with no new point left, whose point another
worker sampled at the same moment, whose parameters break a limit of the space, or that the time budget
left cannot hold ends FAILED before any training, with its reason, and is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from sweeps.sampling import free_points, repeated_trial
from sweeps.space import SearchSpace
from sweeps.trial_states import LIVE_STATES, NOT_RUN_ATTR, trials_run_here


class TrialNotRun(Exception):
    """The trial ends FAILED before any training, and is not counted."""

    stops_sweep = False


class StudyFull(TrialNotRun):
    stops_sweep = True


class SpaceExhausted(TrialNotRun):
    stops_sweep = True


class RepeatedPoint(TrialNotRun):
    pass


class Infeasible(TrialNotRun):
    """The point breaks a limit known before training (its parameters, its generation latency)."""


class LimitsUnmet(Infeasible):
    """So many points broke the limits before training that the space's limits are likely out of reach
    (a latency no configuration has here): the sweep stops instead of drawing forever."""

    stops_sweep = True


class BudgetSpent(TrialNotRun):
    """The time budget left holds no more trial and the confirmations after it (``sweeps.time_budget``)."""

    stops_sweep = True


def check_room(study: optuna.Study, trial: optuna.Trial, trials: int | None, space: SearchSpace) -> None:
    """Refuse a trial beyond the ``trials`` the study should hold (None: no count, a time budget ends the
    sweep), or in a space with no new point left.

    Trial numbers order the workers: a trial runs only when fewer than ``trials`` live trials
    have lower numbers, so workers and machines that start at once end with exactly ``trials``.
    """
    ahead = sum(t.number < trial.number for t in trials_run_here(study, LIVE_STATES))
    if trials is not None and ahead >= trials:
        raise StudyFull(f"the study already holds {trials} trials")
    free = free_points(study, space, excluding=trial.number)  # a queued retry holds its own point
    if free is not None and not free:
        limited = " or breaks its limits" if space.limits else ""
        raise SpaceExhausted(
            f"the search space is exhausted: each of its {len(space.all_points())} points was tried{limited}"
        )


def admit(
    trial: optuna.Trial,
    space: SearchSpace,
    trials: int | None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The trial's sampled values, if it may train; else its reason is recorded and ``TrialNotRun`` raised
    (stopping the sweep where nothing more can run). ``check`` refuses sampled values whose training
    the time budget left cannot hold (``BudgetSpent``) or that break a limit known before training
    (``Infeasible``; the sampler redraws points over a limit on parameters or memory, so there it is a last resort)."""
    try:
        check_room(trial.study, trial, trials, space)
        sampled = space.sample(trial)
        repeated = repeated_trial(trial.study, trial, space)
        if repeated is not None:
            raise RepeatedPoint(f"its point repeats trial {repeated}, sampled at the same moment")
        if check is not None:
            check(sampled)
    except TrialNotRun as exc:
        trial.set_user_attr(NOT_RUN_ATTR, str(exc))
        if exc.stops_sweep:
            trial.study.stop()
        raise
    return sampled
