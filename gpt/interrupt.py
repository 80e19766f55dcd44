"""Ctrl-C that cannot be lost.

Python drops a KeyboardInterrupt raised inside a garbage-collector callback
("Exception ignored in ..."), and a run would then go on as if nothing was pressed.
While ``ctrl_c_remembered()`` is active, a press is also recorded, and long loops call
``stop_if_ctrl_c()`` at safe points to raise it again.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_pressed = threading.Event()


def _on_ctrl_c(signum: int, frame: Any) -> None:
    _pressed.set()
    raise KeyboardInterrupt


@contextmanager
def ctrl_c_remembered() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is _on_ctrl_c:
        yield  # signals reach the main thread only; an outer block already listens
        return
    previous, previous_hook = signal.signal(signal.SIGINT, _on_ctrl_c), sys.unraisablehook

    def quiet_dropped_ctrl_c(unraisable: Any) -> None:
        """A dropped KeyboardInterrupt is remembered, so it needs no traceback on the console."""
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_dropped_ctrl_c
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
        _pressed.clear()


def stop_if_ctrl_c() -> None:
    if _pressed.is_set():
        raise KeyboardInterrupt
