"""A stop signal that lands while the journal file's lock is given back: the interrupt, not a traceback."""

import os
import signal

import pytest
from optuna.storages.journal import JournalFileSymlinkLock

from gpt.interrupt import received_signal, stop_signals_remembered
from sweeps.journal_lock import WholeJournalLock


def signal_right_after_unlink(monkeypatch) -> None:
    """SIGTERM arrives the moment the lock's renamed file is unlinked: the window CI once hit."""
    real_unlink = os.unlink

    def unlink_then_signal(path, *args, **kwargs):
        real_unlink(path, *args, **kwargs)
        if path.endswith(".rename"):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "unlink", unlink_then_signal)


@pytest.mark.parametrize(("lock_type", "raised"), [(JournalFileSymlinkLock, FileNotFoundError),
                                                   (WholeJournalLock, KeyboardInterrupt)])  # fmt: skip
def test_a_stop_signal_during_the_lock_release_stops_the_program_and_frees_the_lock(
    tmp_path, monkeypatch, lock_type, raised
):
    """Optuna's own lock hides the interrupt behind a FileNotFoundError (if this starts raising
    KeyboardInterrupt, Optuna fixed it and ``sweeps/journal_lock.py`` can go); the project's raises it."""
    path = str(tmp_path / "journal.log")
    lock = lock_type(path)
    with stop_signals_remembered():
        assert lock.acquire()
        signal_right_after_unlink(monkeypatch)
        with pytest.raises(raised):
            lock.release()
        assert received_signal() == signal.SIGTERM
    monkeypatch.undo()
    assert lock_type(path).acquire()  # the lock was given back
