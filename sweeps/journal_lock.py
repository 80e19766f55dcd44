"""The journal file's lock, given back whole when a stop signal comes.

A stop signal raises ``KeyboardInterrupt`` wherever the main thread is (``gpt.interrupt``). When it lands
right after Optuna's ``JournalFileSymlinkLock.release()`` has unlinked its renamed lock file, the method's
``except BaseException`` unlinks it again, and the ``FileNotFoundError`` that raises hides the interrupt: the
sweep ended with a traceback and status 1 instead of closing its trial and exiting 130 or 143 (seen once in
CI, ``tests/test_sweep_interrupt.py``). Taking and giving back the lock with the stop signals deferred keeps
those few file operations whole; the interrupt comes right after them. No upstream issue found for it (Optuna
5.1); ``tests/test_journal_lock.py`` shows the behaviour, and fails once Optuna's own lock stops hiding it.
"""

from __future__ import annotations

from optuna.storages.journal import JournalFileSymlinkLock

from gpt.interrupt import stop_signals_deferred


class WholeJournalLock(JournalFileSymlinkLock):
    """Optuna's symlink lock (the journal file's default), taken and given back with stop signals deferred."""

    def acquire(self) -> bool:
        with stop_signals_deferred():
            return super().acquire()

    def release(self) -> None:
        with stop_signals_deferred():
            super().release()
