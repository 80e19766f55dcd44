"""The groups of Optuna trial states the sweep counts by, named for what each decides."""

from optuna.trial import TrialState

# Trials with a result: the ones a study "holds" toward --trials.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Finished or training now: a worker starts one more only while fewer than --trials are.
COUNTED_STATES = (*FINISHED_STATES, TrialState.RUNNING)
# Those and the queued ones: each holds its point, and orders the workers by trial number.
LIVE_STATES = (*COUNTED_STATES, TrialState.WAITING)
