"""Every use of Optuna beyond its public, stable API, in one place: each with why no public API serves.

Optuna's semantic versioning covers its public names only; ``setup.cfg`` caps it below the next major
version, and ``tests/test_library_internals.py`` fails loudly if a release removes anything named here.
To raise the cap, run that test against the new version and follow each link below.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna
from optuna.storages._heartbeat import BaseHeartbeat  # noqa: F401 (re-exported)
from optuna.trial import FrozenTrial, TrialState

# Heartbeats for storages other than RDBStorage: a storage joins Optuna's heartbeat protocol by subclassing
# the private ``BaseHeartbeat`` and answering its private ``_get_stale_trial_ids`` hook with private
# trial ids. Until https://github.com/optuna/optuna/issues/6615 (heartbeats for JournalStorage) lands,
# sweeps/journal_heartbeat.py does so.
STALE_TRIAL_IDS_HOOK = "_get_stale_trial_ids"


def storage_trial_id(trial: FrozenTrial) -> int:
    """The storage's own id of ``trial`` (``FrozenTrial._trial_id``), what ``BaseHeartbeat``'s hook returns;
    the public ``trial.number`` is per study, not per storage (same issue as above)."""
    return trial._trial_id


# The cache Optuna puts in front of every RDBStorage (``_CachedStorage``) and its heartbeat read and write
# through these private methods of ``RDBStorage``; sweeps/storage_outage.py retries them by name during a
# database outage, as it retries the public interface. Optuna retries deadlocks only, not lost connections,
# and has no hook to wrap its storage calls (no upstream issue asks for one yet). A name a later release
# drops is skipped there, and the test above says so.
RDB_PRIVATE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    STALE_TRIAL_IDS_HOOK,
)

# ``Study.enqueue_trial`` keeps a waiting trial's values in this system attribute until it runs; the sampler
# must know them to never draw a point already queued, and no public accessor exists (``trial.params`` is
# empty until the trial starts: https://github.com/optuna/optuna/issues/4474).
FIXED_PARAMS_ATTR = "fixed_params"

# ``RetryFailedTrialCallback`` links a retried trial to the one it repeats through this system attribute,
# read back by its public ``retried_trial_number``; Optuna has no public way to queue a trial as a retry, so
# a trial the sweep re-queues after Ctrl-C writes the attribute itself and is counted and shown the same way.
FAILED_TRIAL_ATTR = "failed_trial"


def all_trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[FrozenTrial]:
    """Every trial of ``study``, also where it is the ``_BracketStudy`` ``HyperbandPruner`` hands a sampler, whose
    public ``get_trials`` holds only the trial's bracket (one of three here): a sampler that must not repeat a
    point needs them all. Optuna's own samplers read the private ``Study._get_trials``, which a bracket study
    does not filter, as its ``BruteForceSampler`` was changed to: https://github.com/optuna/optuna/pull/6107."""
    return study._get_trials(deepcopy=False, states=states, use_cache=False)


def queued_params(trial: FrozenTrial) -> dict:
    """A waiting trial's fixed values (see ``FIXED_PARAMS_ATTR``); empty for a trial that was sampled."""
    return trial.system_attrs.get(FIXED_PARAMS_ATTR, {})


@contextlib.contextmanager
def experimental_features() -> Iterator[None]:
    """Optuna features still marked experimental that the sweep relies on (heartbeats since 2.5, their retry
    callback since 2.8, metric names since 3.2) without their warning on every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
