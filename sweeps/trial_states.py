"""The groups of Optuna trial states the sweep counts by, named for what each decides."""

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

WARM_START_ATTR = "warm_start_from"  # on a trial an earlier study's finished one joined as: "<study>#<number>"
NOT_RUN_ATTR = "not_run"  # why a trial ended before training (sweeps.admission); such a trial does not count

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


def state_counts(study: optuna.Study) -> str:
    """How many trials are in each state, as "84 complete, 42 pruned, 1 not run": a trial the admission refused
    before training ends FAIL (Optuna has no state for it) but is counted as not run, since nothing failed."""
    counts = Counter(
        "not run" if t.state == TrialState.FAIL and NOT_RUN_ATTR in t.user_attrs else t.state.name.lower()
        for t in study.get_trials(deepcopy=False)
    )
    order = [state.name.lower() for state in TrialState] + ["not run"]
    return ", ".join(f"{counts[label]} {label}" for label in order if counts[label])
