"""Warm starts (``sweep --warm-start STUDY``): an earlier study's finished trials inform a new one without
being trained again.

An earlier trial joins when the configuration it trained is one this space would train: its values of this
space's params (read from the config it trained, so a param this space adds has the value it trained with)
lie inside this space's ranges, and every other setting equals what this space's base gives, validation
blocks and evaluation points included, so its value was measured as this study measures. A param the
earlier space searched and this one does not must therefore have trained at this base's value. A joined
trial is added in its state (complete, or pruned with its reports) with its value and reports: it informs
the sampler and the pruner, holds its point (so it is never trained again) and ranks like any trial, but
counts toward nothing (``sweeps.trial_states.trials_run_here``). One that trained this base at values outside
this space's ranges cannot be a point of it, but tells the sampler about the region beside them: it is kept
on the study for the sampler alone (``sweeps.sampling_view``).

``top``: the earlier study's best K configurations are also queued to train first, where this space holds
their values and no trial here holds their point (one that joined already does). That serves a space whose
base changed (longer training, more data), where no trial can join.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from gpt.config import TrainingConfig
from gpt.data import TokenizedText
from gpt.errors import ConfigError, UserError
from sweeps.metrics import Objective
from sweeps.objective import trial_config
from sweeps.ranking import objectives_of, ranked_trials
from sweeps.sampling import held_points
from sweeps.sampling_view import OutsideTrial, save_outside_trials
from sweeps.space import SearchSpace
from sweeps.trial_states import FINISHED_STATES, WARM_START_ATTR


@dataclass(frozen=True)
class WarmStart:
    """What a warm start found in the earlier study."""

    earlier: str
    finished: int
    joined: int
    outside: int  # trained this base at values outside this space's ranges: they inform the sampler only
    queued: int

    def describe(self) -> str:
        queued = f"; {self.queued} of its best queued to train first" if self.queued else ""
        outside = (
            f"; {self.outside} more trained this base outside this space's ranges and inform the sampler only"
            if self.outside
            else ""
        )
        if not self.joined:
            cold = "" if self.queued or self.outside else "; starting cold"
            return (
                f"Warm start from study {self.earlier}: none of its {self.finished} finished trials fits this "
                f"space (same base, values inside its ranges){outside}{queued}{cold}"
            )
        return (
            f"Warm start from study {self.earlier}: {self.joined} of its {self.finished} finished trials joined "
            f"as done, not counted toward --trials{outside}{queued}"
        )


def check_comparable(earlier: optuna.Study, space: SearchSpace) -> None:
    """The earlier study must measure and rank as this space does, else its values mean something else."""
    if objectives_of(earlier) != space.objectives:

        def said(objectives: tuple[Objective, ...]) -> str:
            return " and ".join(f"{o.direction}s {o.metric}" for o in objectives)

        raise UserError(
            f"cannot warm-start from study {earlier.study_name!r}: it {said(objectives_of(earlier))}, "
            f"this space {said(space.objectives)}"
        )


def point_in(space: SearchSpace, config: TrainingConfig) -> dict | None:
    """``config``'s values of the space's params, if the space can sample every one of them."""
    params = values_of(space, config)
    return params if holds_all(space, params) else None


def holds_all(space: SearchSpace, params: dict) -> bool:
    """Every value is one the space can sample."""
    return all(p.holds(params[p.name]) for p in space.params)


def values_of(space: SearchSpace, config: TrainingConfig) -> dict:
    """``config``'s values of the space's params, inside its ranges or not."""
    flat = config.to_flat_dict()
    return {p.name: flat[p.name] for p in space.params}


def trained_params(trial: FrozenTrial, space: SearchSpace, tokens: TokenizedText) -> dict | None:
    """The values of this space's params an earlier trial trained this space's base at (inside its ranges or
    not), or None where it trained another configuration."""
    if "config" not in trial.user_attrs:
        return None
    trained = TrainingConfig.from_dict(trial.user_attrs["config"])
    params = values_of(space, trained)
    try:
        same = trial_config(space, params, tokens)[0] == trained
    except ConfigError:  # values this base cannot take (heads that do not divide its width)
        return None
    return params if same else None


def warm_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The trials a warm start brought into ``study``."""
    return [t for t in study.get_trials(deepcopy=False) if WARM_START_ATTR in t.user_attrs]


def warm_start(
    study: optuna.Study, space: SearchSpace, earlier: optuna.Study, tokens: TokenizedText, top: int = 0
) -> WarmStart:
    """Add the earlier study's trials that fit ``space`` to the new ``study``, and queue its ``top`` best."""
    distributions = {p.name: p.distribution for p in space.params}
    finished = earlier.get_trials(deepcopy=False, states=FINISHED_STATES)
    joined, outside = 0, []
    for trial in finished:
        params = trained_params(trial, space, tokens)
        if params is None:
            continue
        source = f"{earlier.study_name}#{trial.number}"
        if not holds_all(space, params):
            outside.append(OutsideTrial.of(trial, params, source))
            continue
        study.add_trial(
            FrozenTrial(  # as it ran, its start and end included: a confirmation of it takes that long
                number=0,  # the storage numbers it
                trial_id=0,
                state=trial.state,
                value=None,
                values=trial.values,
                datetime_start=trial.datetime_start,
                datetime_complete=trial.datetime_complete,
                params=params,
                distributions=distributions,
                user_attrs={**trial.user_attrs, WARM_START_ATTR: source},
                system_attrs={},
                intermediate_values=trial.intermediate_values,
            )
        )
        joined += 1
    save_outside_trials(study, outside)
    queued = 0
    held = held_points(study, space.names)
    for trial in ranked_trials(earlier)[:top]:
        config = trial.user_attrs.get("config")
        params = point_in(space, TrainingConfig.from_dict(config)) if config else None
        if params is not None and tuple(params.values()) not in held:
            study.enqueue_trial(params)
            queued += 1
    return WarmStart(earlier.study_name, len(finished), joined, len(outside), queued)
