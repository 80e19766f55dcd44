"""The study as the sampler sees it once a warm start brought trials from outside this space.

A warm start joins the earlier trials that are points of this space (``sweeps.warm_start``). Those that
trained this space's base at values outside its ranges (a learning rate below a range that moved up) cannot
join, since Optuna keeps every trial's values inside its distributions; yet they are all that is known about
the region beside the new range's edge. Without them TPE takes that region for unexplored and spends trials
there: in ``benchmarks.warm_start`` (seed 0) three of the warm-started study's first four trials went to
learning rates of 3e-4 to 5e-4, beside the five trials below 3e-4 the earlier study had found bad.

So they are kept as ``OutsideTrial`` records on the study (``open_study`` hands them to the sampler), and the
sampler draws from a view: an in-memory study holding this study's finished and running trials and the outside
ones, each moved to the nearest point of this space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from sweeps.optuna_internals import all_trials
from sweeps.space import Param, SearchSpace

OUTSIDE_TRIALS_ATTR = "warm_start_outside"  # the study's user attr holding its OutsideTrial records


@dataclass(frozen=True)
class OutsideTrial:
    """An earlier trial that trained this space's base at values outside its ranges: what the sampler needs."""

    params: dict[str, Any]
    state: TrialState  # COMPLETE or PRUNED
    values: tuple[float, ...] | None
    intermediate_values: dict[int, float]
    source: str  # "<study>#<number>"

    @classmethod
    def of(cls, trial: FrozenTrial, params: dict[str, Any], source: str) -> OutsideTrial:
        values = tuple(trial.values) if trial.values is not None else None
        return cls(params, trial.state, values, dict(trial.intermediate_values), source)

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "state": self.state.name,
            "values": list(self.values) if self.values is not None else None,
            "intermediate_values": {str(step): value for step, value in self.intermediate_values.items()},
            "source": self.source,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> OutsideTrial:
        values = tuple(record["values"]) if record["values"] is not None else None
        steps = {int(step): value for step, value in record["intermediate_values"].items()}
        return cls(record["params"], TrialState[record["state"]], values, steps, record["source"])


def save_outside_trials(study: optuna.Study, outside: Sequence[OutsideTrial]) -> None:
    study.set_user_attr(OUTSIDE_TRIALS_ATTR, [trial.to_json() for trial in outside])


def outside_trials(study: optuna.Study) -> list[OutsideTrial]:
    """The records a warm start left on ``study``; none for a study that did not start warm."""
    return [OutsideTrial.from_json(record) for record in study.user_attrs.get(OUTSIDE_TRIALS_ATTR, [])]


def moved_inside(param: Param, value: Any) -> Any | None:
    """``value`` moved to the nearer end of ``param``'s range where it lies beyond one; None for a choice the
    param does not offer, which has no nearest one."""
    d = param.distribution
    if isinstance(d, CategoricalDistribution):
        return value if value in d.choices else None
    return min(max(value, d.low), d.high)


def sampling_view(
    study: optuna.Study, trial: FrozenTrial, space: SearchSpace, outside: Sequence[OutsideTrial]
) -> tuple[optuna.Study, FrozenTrial]:
    """An in-memory study of ``study``'s finished and running trials (but ``trial``) and the ``outside``
    ones, and ``trial`` as a running trial of it: what TPE or GP reads.

    An outside trial stands at the nearest point of the space: a value beyond an end of a range at that end.
    So the sampler learns that the region at the edge is good or bad, without ever proposing a point outside
    the space. One with a choice this space does not offer is left out."""
    distributions = {p.name: p.distribution for p in space.params}
    view = optuna.create_study(directions=study.directions)

    def add(state: TrialState, params: dict[str, Any], like: FrozenTrial | OutsideTrial | None = None) -> None:
        view.add_trial(
            optuna.trial.create_trial(
                state=state,
                params=params,
                distributions={name: distributions[name] for name in params},
                values=like.values if like is not None and state != TrialState.RUNNING else None,
                intermediate_values=like.intermediate_values if like is not None else None,
                system_attrs=like.system_attrs if isinstance(like, FrozenTrial) else None,  # its constraints
            )
        )

    for t in all_trials(study, (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):
        params = {name: t.params[name] for name in space.names if name in t.params}
        if t.number != trial.number and len(params) == len(distributions):
            add(t.state, params, t)
    for t in outside:
        params = {p.name: moved_inside(p, t.params.get(p.name)) for p in space.params}
        if None not in params.values():
            add(t.state, params, t)
    add(TrialState.RUNNING, {})
    return view, view.get_trials(deepcopy=False)[-1]
