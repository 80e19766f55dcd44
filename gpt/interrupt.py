"""Stopping the way people and machines stop programs: Ctrl-C (SIGINT) and SIGTERM, one path for both.

Schedulers, containers and service managers send SIGTERM, then SIGKILL after a grace
period. While ``stop_signals_remembered()`` is active, either signal raises
``KeyboardInterrupt`` in the main thread, so every ``except KeyboardInterrupt`` cleanup
(a run marked KILLED, its last checkpoint saved) runs for both; ``received_signal()``
says which one came. A later signal during that cleanup is only remembered, so the
cleanup finishes inside the grace period instead of being cut short.

Python drops a KeyboardInterrupt raised inside a garbage-collector callback ("Exception
ignored in ..."); the signal is remembered too, and long loops call
``stop_if_signalled()`` at safe points to raise it again. A few short steps must not be cut in
the middle (a file lock given back); ``stop_signals_deferred()`` holds the signal until they end.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the stop signals received while remembering, first first
_deferring: list[bool] = []  # one entry per stop_signals_deferred() block the main thread is in


def _on_stop_signal(signum: int, frame: Any) -> None:
    first = not _received
    _received.append(signum)
    if first and not _deferring:
        raise KeyboardInterrupt


@contextmanager
def stop_signals_remembered() -> Iterator[None]:
    """Handle SIGINT and SIGTERM as described above until the block ends, then put the old handlers back."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is _on_stop_signal:
        yield  # signals reach the main thread only; an outer block already listens
        return
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    previous_hook = sys.unraisablehook

    def quiet_dropped_interrupt(unraisable: Any) -> None:
        """A dropped KeyboardInterrupt is remembered, so it needs no traceback on the console."""
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_dropped_interrupt
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _received.clear()


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then let them in: a short step that a KeyboardInterrupt
    must not cut in two runs whole, and the interrupt comes right after it. In the main thread, where the
    handler raises; another thread's block runs as it is. Outside ``stop_signals_remembered()`` nothing is
    received, so nothing is raised at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # Not the thread's signal mask: the kernel hands a process's signal to any thread that does not block it,
    # and Python runs the handler in the main thread all the same. The handler itself holds back.
    already_stopping = bool(_received)
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    if _received and not already_stopping and not _deferring:
        raise KeyboardInterrupt  # the first stop signal came during the block


def received_signal() -> int | None:
    """The first stop signal received inside ``stop_signals_remembered()``, if any."""
    return _received[0] if _received else None


def stopped_by() -> str:
    """A name for what stopped the program: ``SIGTERM``, ``SIGINT``, or ``KeyboardInterrupt`` (no handler)."""
    signum = received_signal()
    return signal.Signals(signum).name if signum is not None else "KeyboardInterrupt"


def exit_status() -> int:
    """The shell's status for a program stopped by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + (received_signal() or signal.SIGINT)


def stop_if_signalled() -> None:
    if _received:
        raise KeyboardInterrupt
