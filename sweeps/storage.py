"""Where a study lives: an Optuna RDB database for several machines, else a journal file."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy

from gpt.errors import UserError, one_line
from sweeps.journal_heartbeat import HeartbeatJournalStorage
from sweeps.recovery import StaleCallback, heartbeat_options
from tracking.store import probe_database, redacted

JOURNAL_NAME = "optuna-journal.log"
SCHEMA_ATTEMPTS = 5


def default_storage(tracking_uri: str) -> str:
    """A journal file beside the MLflow database, or in the current folder for a remote store."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL_NAME)
    return JOURNAL_NAME


def open_storage(
    storage: str, heartbeat_s: int | None = None, on_stale: StaleCallback | None = None
) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL, else a journal file that several local processes share safely.

    With ``heartbeat_s`` the workers beat and trials of dead workers are failed and retried.
    """
    if "://" in storage:
        probe_database(storage, "Optuna storage")
        try:
            return rdb_storage(storage, heartbeat_options(heartbeat_s, on_stale) if heartbeat_s else {})
        except Exception as exc:  # SQLAlchemy and drivers raise many kinds for a storage they cannot use
            raise UserError(f"cannot open Optuna storage {redacted(storage)}: {one_line(exc)}") from None
    path = Path(storage)
    if path.is_dir():
        raise UserError(f"Optuna storage {path} is a folder; give a journal file path")
    if not path.parent.is_dir():
        raise UserError(f"folder of Optuna storage {path} does not exist")
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    if heartbeat_s:
        return HeartbeatJournalStorage(backend, heartbeat_s, on_stale)
    return optuna.storages.JournalStorage(backend)


def rdb_storage(url: str, options: dict) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; machines starting at once race to create its tables, so the loser retries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat, in use since 2.5
        for attempt in range(1, SCHEMA_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(url, **options)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                time.sleep(0.5 * attempt)  # the other machine's CREATE TABLE commits meanwhile
        return optuna.storages.RDBStorage(url, **options)


def load_study(name: str, storage: str) -> optuna.Study:
    """An existing study; a missing one is a clear error, not a new empty study."""
    if "://" not in storage and not Path(storage).is_file():
        raise UserError(f"no Optuna storage at {redacted(storage)}; pass the --storage the sweep used")
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        raise UserError(f"no study named {name!r} in {redacted(storage)}") from None
