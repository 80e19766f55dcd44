"""Optuna's heartbeat protocol for the journal-file storage.

Optuna runs heartbeats (a thread beating for the running trial, stale trials failed before
each new one, a callback that retries them) only for storages that subclass its private
``BaseHeartbeat``, and only ``RDBStorage`` does. Until
https://github.com/optuna/optuna/issues/6615 (heartbeat support for ``JournalStorage``)
lands, this module implements that private class's private ``_get_stale_trial_ids`` hook, with the
private trial ids it must return; ``sweeps.optuna_internals`` names them.
"""

from __future__ import annotations

import contextlib
import time

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import TrialState

from sweeps import GRACE_BEATS
from sweeps.optuna_internals import BaseHeartbeat, storage_trial_id
from sweeps.recovery import WORKER_ATTR, StaleCallback, worker_is_dead_here

HEARTBEAT_ATTR = "heartbeat"


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """A journal-file storage with Optuna's heartbeat protocol, so ``optimize`` fails stale trials itself."""

    def __init__(self, backend: BaseJournalBackend, heartbeat_s: int, on_stale: StaleCallback | None) -> None:
        super().__init__(backend)
        self.heartbeat_s, self.on_stale = heartbeat_s, on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(UpdateFinishedTrialError):  # failed as stale meanwhile: nothing to beat for
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last_beat = trial.system_attrs.get(HEARTBEAT_ATTR, trial.datetime_start.timestamp())
            if now - last_beat > GRACE_BEATS * self.heartbeat_s or worker_is_dead_here(
                trial.user_attrs.get(WORKER_ATTR)
            ):
                stale.append(storage_trial_id(trial))
        return stale

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_s

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.on_stale
