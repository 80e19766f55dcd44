"""A full disk, recognised wherever it surfaces and said in one line: what was being written, where, how
much it needed if known, and how much is free.

Out of space is a fault of the machine, not of the input: the command line answers it with status 1, not
the 2 of bad input. Each library says it its own way (``OSError`` ENOSPC from Python, a ``RuntimeError``
from torch's zip writer, "database or disk is full" from SQLite, wrapped by SQLAlchemy and MLflow), so
``is_out_of_space`` reads the whole chain of causes.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpt.errors import MachineFault

NO_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NO_SPACE_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")


class OutOfSpace(MachineFault):
    """A write that failed for want of disk space."""

    def __init__(self, what: str, where: str | Path, needed: int | None = None) -> None:
        super().__init__(what, str(where))
        self.what, self.where, self.needed = what, Path(where), needed
        self.free = free_bytes(self.where)  # once the failed write's leftovers are gone, as it is told
        self.then = "rerun the same command"  # what continues the work, where the caller knows better

    def __str__(self) -> str:
        needs = f"it needs about {size(self.needed)}, " if self.needed else ""
        left = f"{size(self.free)} free there" if self.free is not None else "its free space unknown"
        return f"out of disk space writing {self.what} to {self.where} ({needs}{left}); free some, then {self.then}"


def is_out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc``, or any exception it was raised from or while handling, is a full disk or quota."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OutOfSpace):
            return True
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if any(words in str(exc).lower() for words in NO_SPACE_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_usage(path: str | Path) -> tuple[int, int] | None:
    """(total, free) bytes of the filesystem holding ``path`` (or its nearest existing parent); None if unknown."""
    path = Path(path)
    folder = next((p for p in (path, *path.parents) if p.exists()), None)
    try:
        usage = shutil.disk_usage(folder) if folder is not None else None
    except OSError:
        return None
    return (usage.total, usage.free) if usage is not None else None


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem holding ``path``; None if unknown."""
    usage = disk_usage(path)
    return usage[1] if usage is not None else None


def size(count: int | None) -> str:
    """``12.3 MB``, ``1.95 GB``: a byte count for a person."""
    if count is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


@contextmanager
def writing(what: str, where: str | Path, needed: int | None = None) -> Iterator[None]:
    """Within the block, a write that runs out of space raises ``OutOfSpace`` naming ``what`` and ``where``."""
    try:
        yield
    except OutOfSpace:
        raise
    except Exception as exc:
        # torch.save's zip writer says only that a write failed ("basic_ios::clear: iostream error"):
        # a failed write where the free space is short of what it needed is taken for a full disk.
        if is_out_of_space(exc) or (isinstance(exc, (OSError, RuntimeError)) and nearly_full(where, needed)):
            raise OutOfSpace(what, where, needed) from exc
        raise


def nearly_full(where: str | Path, needed: int | None) -> bool:
    """Less free space at ``where`` than ``needed`` (or than 1% of its filesystem when that is unknown)."""
    usage = disk_usage(where)
    if usage is None:
        return False
    total, free = usage
    return free < (needed if needed is not None else total / 100)
