"""The groups of Optuna trial states the sweep counts by, named for what each decides."""

import optuna
from optuna.trial import FrozenTrial, TrialState

WARM_START_ATTR = "warm_start_from"  # on a trial an earlier study's finished one joined as: "<study>#<number>"

# Trials with a result: the ones a study "holds" toward --trials.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Finished or training now: a worker starts one more only while fewer than --trials are.
COUNTED_STATES = (*FINISHED_STATES, TrialState.RUNNING)
# Those and the queued ones: each holds its point, and orders the workers by trial number.
LIVE_STATES = (*COUNTED_STATES, TrialState.WAITING)


def trials_run_here(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    """The study's trials in ``states`` but those a warm start brought in from an earlier study, which
    inform the sampler and pruner but count toward nothing."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if WARM_START_ATTR not in t.user_attrs]
