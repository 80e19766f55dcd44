"""Opening a study: created or resumed, with its sampler and pruner, checked against its space."""

from __future__ import annotations

import optuna

from gpt.errors import UserError
from sweeps.optuna_internals import experimental_features
from sweeps.ranking import objectives_of
from sweeps.sampling import DistinctSampler, make_pruner
from sweeps.sampling_view import outside_trials
from sweeps.space import SearchSpace
from sweeps.trial_states import FINISHED_STATES, trials_run_here


def open_study(
    space: SearchSpace, name: str, storage: optuna.storages.BaseStorage, parallel: bool = False
) -> tuple[optuna.Study, bool]:
    """Create or resume ``name``; True when this call created it. A study of another space is refused.

    ``parallel``: other processes run trials of the study at the same time (see ``DistinctSampler``).
    """
    sampler = DistinctSampler(space, parallel)
    options = {"storage": storage, "sampler": sampler, "pruner": make_pruner(space), "study_name": name}
    try:
        directions = [o.direction for o in space.objectives]
        study, created = optuna.create_study(directions=directions, **options), True
        with experimental_features():  # optuna-dashboard and objectives_of read them
            study.set_metric_names([o.metric for o in space.objectives])
    except optuna.exceptions.DuplicatedStudyError:
        study, created = optuna.load_study(**options), False
    made_from = study.user_attrs.get("space_sha256")
    if made_from is None:
        study.set_user_attr("space_sha256", space.sha256)
        study.set_user_attr("space_file", str(space.path))
    elif made_from != space.sha256 or objectives_of(study) != space.objectives:
        raise UserError(
            f"study {name!r} was made from a different search space ({study.user_attrs.get('space_file')}); "
            "pass --study with a new name to search this one"
        )
    outside = outside_trials(study)
    if outside:  # a warm start left earlier trials from outside this space's ranges for the sampler
        study.sampler = DistinctSampler(space, parallel, outside)
    return study, created


def finished_trials(study: optuna.Study) -> int:
    return len(trials_run_here(study, FINISHED_STATES))
