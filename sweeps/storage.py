"""Where a study lives: an Optuna RDB database for several machines, else a journal file."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import sqlalchemy

from gpt.errors import UserError, one_line
from sweeps import DEFAULT_STORAGE_RETRY_S, JOURNAL_NAME
from sweeps.journal_heartbeat import HeartbeatJournalStorage
from sweeps.journal_lock import WholeJournalLock
from sweeps.optuna_internals import experimental_features
from sweeps.recovery import StaleCallback, heartbeat_options
from sweeps.storage_outage import PatientRDBStorage
from tracking.store import probe_database, redacted

SCHEMA_ATTEMPTS = 5


def default_storage(tracking_uri: str) -> str:
    """A journal file beside the MLflow database, or in the current folder for a remote store."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def open_storage(
    storage: str,
    heartbeat_s: int | None = None,
    on_stale: StaleCallback | None = None,
    retry_s: float = DEFAULT_STORAGE_RETRY_S,
) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL, else a journal file that several local processes share safely.

    With ``heartbeat_s`` the workers beat and trials of dead workers are failed and retried. A database
    that must answer now, at the start, is checked in seconds; one that goes away later is waited for
    up to ``retry_s`` seconds (a local journal file needs no waiting).
    """
    if "://" in storage:
        probe_database(storage, "Optuna storage")
        try:
            options = heartbeat_options(heartbeat_s, on_stale) if heartbeat_s else {}
            return rdb_storage(storage, retry_s, options)
        except Exception as exc:  # SQLAlchemy and drivers raise many kinds for a storage they cannot use
            raise UserError(f"cannot open Optuna storage {redacted(storage)}: {one_line(exc)}") from None
    path = Path(storage)
    if path.is_dir():
        raise UserError(f"Optuna storage {path} is a folder; give a journal file path")
    if not path.parent.is_dir():
        raise UserError(f"folder of Optuna storage {path} does not exist")
    backend = optuna.storages.journal.JournalFileBackend(str(path), lock_obj=WholeJournalLock(str(path)))
    if heartbeat_s:
        return HeartbeatJournalStorage(backend, heartbeat_s, on_stale)
    return optuna.storages.JournalStorage(backend)


def rdb_storage(url: str, retry_s: float, options: dict) -> PatientRDBStorage:
    """Optuna's RDB storage, patient with outages; machines starting at once race to create its tables,
    so the loser retries."""
    with experimental_features():
        for attempt in range(1, SCHEMA_ATTEMPTS):
            try:
                return PatientRDBStorage(url, retry_s, **options)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                time.sleep(0.5 * attempt)  # the other machine's CREATE TABLE commits meanwhile
        return PatientRDBStorage(url, retry_s, **options)


def load_study(name: str, storage: str, storage_flag: str = "--storage") -> optuna.Study:
    """An existing study; a missing one is a clear error, not a new empty study. ``storage_flag`` is the
    option that names the storage where the study was read from (``--warm-start-storage`` for a warm start)."""
    if "://" not in storage and not Path(storage).is_file():
        raise UserError(f"no Optuna storage at {redacted(storage)}; pass the {storage_flag} the sweep used")
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        raise UserError(f"no study named {name!r} in {redacted(storage)}") from None
