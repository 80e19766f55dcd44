"""An Optuna RDB storage that waits out a database that goes away for a while (a restart, a failover,
a maintenance window) instead of failing the sweep.

Two of SQLAlchemy's own means do most of it: ``pool_pre_ping`` replaces the pooled connections the
restart killed, and a ``do_connect`` event makes every new connection wait, with backoff, until the
server answers again or the window (``--storage-retry-s``) has passed. Every call of Optuna's storage
interface is also retried once its connection is back, for the statement that was in flight when the
server went down. After the window every call fails at once with ``StorageOutage``: one line, and the
same command resumes the sweep once the database is back.

Optuna has no such retry (its ``_create_new_trial`` retries deadlocks only), and the cache it puts in
front of every ``RDBStorage`` (``_CachedStorage``), like its heartbeat, reads and writes through five
private methods of ``RDBStorage``; they are retried too, by the names ``sweeps.optuna_internals``
keeps (``RDB_PRIVATE_CALLS``). Should a later Optuna rename one, the name is skipped: that call then
still waits for a new connection, and only its in-flight statement is not retried.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage

from gpt.errors import UserError, one_line
from sweeps.optuna_internals import RDB_PRIVATE_CALLS
from tracking.store import redacted

log = logging.getLogger(__name__)

FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 10.0


class StorageOutage(UserError):
    """The Optuna storage did not answer within the retry window."""


def root_cause(exc: BaseException) -> BaseException:
    """The first exception of the ``raise ... from`` chain: the driver's own words, not Optuna's wrapper's."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_connection_error(exc: BaseException) -> bool:
    """The database was unreachable or dropped the connection: worth waiting out, unlike bad data.

    Optuna wraps SQLAlchemy's errors in its own ``StorageInternalError``, so the whole chain is read.
    """
    while exc is not None:
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class OutageWait:
    """Waits for one storage across this process's threads; says once when it starts and once when it ends."""

    def __init__(self, url: str, window_s: float) -> None:
        self.url, self.window_s = redacted(url), window_s
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.given_up = False

    def connect(self, dialect: Any, record: Any, cargs: tuple, cparams: dict) -> Any:
        """SQLAlchemy's ``do_connect`` event: the DBAPI connection, once the server accepts one."""
        wait = FIRST_WAIT_S
        while True:
            self.raise_if_given_up()
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                self.went_down(exc)
                time.sleep(min(wait, self.time_left()))
                wait = min(2 * wait, LONGEST_WAIT_S)
            else:
                self.came_back()
                return connection

    def retry(self, call: functools.partial) -> Any:
        """``call``, again while its failures are lost connections and the window lasts."""
        while True:
            self.raise_if_given_up()
            try:
                result = call()
            except Exception as exc:
                if isinstance(exc, StorageOutage) or not is_connection_error(exc):
                    raise
                self.went_down(exc)  # the next attempt's new connection waits in connect()
                time.sleep(min(FIRST_WAIT_S, self.time_left()))
            else:
                self.came_back()  # also when a pooled connection served it: the outage is over
                return result

    def went_down(self, exc: BaseException) -> None:
        with self.lock:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning(
                    f"Optuna storage {self.url} is not answering ({one_line(root_cause(exc), 200)}); "
                    f"waiting up to {self.window_s:g} s for it (--storage-retry-s)"
                )
            elif time.monotonic() - self.down_since >= self.window_s:
                self.given_up = True
        self.raise_if_given_up()

    def came_back(self) -> None:
        with self.lock:
            if self.down_since is not None:
                log.warning(f"Optuna storage {self.url} answers again after {time.monotonic() - self.down_since:.0f} s")
                self.down_since = None

    def time_left(self) -> float:
        with self.lock:
            since = self.down_since if self.down_since is not None else time.monotonic()
        return max(0.0, self.window_s - (time.monotonic() - since))

    def raise_if_given_up(self) -> None:
        if self.given_up:
            raise StorageOutage(
                f"the Optuna storage {self.url} did not answer for {self.window_s:g} s (--storage-retry-s); "
                "the sweep stopped. Run the same command once the database is back: finished trials are kept "
                "and the interrupted ones run again"
            )


@contextlib.contextmanager
def outages_surfaced() -> Iterator[None]:
    """Around ``study.optimize``: a ``StorageOutage`` comes out as itself.

    When the storage fails while Optuna records a trial's end, ``_run_trial`` masks the error with an
    ``UnboundLocalError`` of its own (https://github.com/optuna/optuna/issues/5280); the outage is in
    its chain.
    """
    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, StorageOutage):
            cause = cause.__cause__ or cause.__context__
        if cause is None or cause is exc:
            raise
        raise cause from None


def _retried(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: PatientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self.outage.retry(functools.partial(method, self, *args, **kwargs))

    return call


def every_storage_call_retried(cls: type[RDBStorage]) -> type[RDBStorage]:
    """Each method of Optuna's storage interface on ``cls``, and each its cache and heartbeat use,
    waits out an outage."""
    public = [name for name in vars(BaseStorage) if not name.startswith("_")]
    for name in [*public, *(name for name in RDB_PRIVATE_CALLS if hasattr(RDBStorage, name))]:
        setattr(cls, name, _retried(getattr(RDBStorage, name)))
    return cls


@every_storage_call_retried
class PatientRDBStorage(RDBStorage):
    """Optuna's ``RDBStorage`` that waits up to ``window_s`` for a database that went away."""

    def __init__(self, url: str, window_s: float, **options: Any) -> None:
        super().__init__(url, engine_kwargs={"pool_pre_ping": True}, **options)
        self.outage = OutageWait(url, window_s)
        sqlalchemy.event.listen(self.engine, "do_connect", self.outage.connect)

    def record_heartbeat(self, trial_id: int) -> None:
        """A beat the database missed is no error of its own: the trial's next call of the storage
        stops the sweep if the database stays away (an error here would end Optuna's heartbeat thread
        with a traceback)."""
        with contextlib.suppress(StorageOutage):
            self.outage.retry(functools.partial(super().record_heartbeat, trial_id))
