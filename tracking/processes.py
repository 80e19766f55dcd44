"""Which process holds a run or a trial, and whether it is gone: a run left RUNNING, or a trial whose
worker was killed, is told dead this way on the machine that ran it."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessId:
    """A process as other processes can find it again: its machine, its pid, and its start time, so that
    a later process given the same pid is not taken for it."""

    host: str
    pid: int
    started: str | None  # seconds since the epoch, to 2 decimals; None where an older record has none

    @classmethod
    def this_process(cls) -> ProcessId:
        return cls(socket.gethostname(), os.getpid(), f"{psutil.Process().create_time():.2f}")

    def __str__(self) -> str:
        """``host:pid:started``, as a trial's ``worker`` attribute holds it."""
        return f"{self.host}:{self.pid}:{self.started}" if self.started else f"{self.host}:{self.pid}"

    @classmethod
    def parse(cls, text: str | None) -> ProcessId | None:
        """Read ``host:pid:started`` or ``host:pid``; None for anything else."""
        host, _, rest = (text or "").partition(":")
        pid, _, started = rest.partition(":")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), started or None)

    def is_gone(self) -> bool | None:
        """True or False on the machine that ran it; None elsewhere, where no process can be checked.

        A pid reused by a later process does not count as alive (its start time differs), nor does a
        zombie (an orphan's, say, whose new parent has not reaped it yet).
        """
        if self.host != socket.gethostname():
            return None
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:  # dead, only not yet reaped by its parent
                return True
            started = process.create_time()
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:  # alive, owned by another user
            return False
        return self.started is not None and f"{started:.2f}" != self.started
