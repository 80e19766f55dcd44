"""Waiting out a storage that went away, without a server: the retry window, its two lines, and the
outage coming out whole from under Optuna's own error (the PostgreSQL restarts are in test_postgres)."""

from __future__ import annotations

import functools

import pytest
import sqlalchemy

from sweeps.storage_outage import OutageWait, StorageOutage, is_connection_error, outages_surfaced

URL = "postgresql://sweeper:hunter2@127.0.0.1:5432/optuna"


def dropped_connection() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))


def test_a_call_that_loses_its_connection_is_retried_and_the_wait_said_in_two_lines(capsys):
    failures = iter([dropped_connection(), dropped_connection()])

    def flaky() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "trials"

    assert OutageWait(URL, window_s=30).retry(functools.partial(flaky)) == "trials"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is not answering" in err[0] and "waiting up to 30 s" in err[0]
    assert "answers again after" in err[1]
    assert "hunter2" not in "".join(err) and "sweeper:***@" in err[0]


def test_past_the_window_every_call_fails_at_once_with_one_line(capsys):
    wait = OutageWait(URL, window_s=0.3)

    def down() -> None:
        raise dropped_connection()

    with pytest.raises(StorageOutage, match=r"did not answer for 0.3 s \(--storage-retry-s\)"):
        wait.retry(functools.partial(down))
    with pytest.raises(StorageOutage):  # given up: no second wait
        wait.retry(functools.partial(lambda: "never called"))
    assert "hunter2" not in capsys.readouterr().err


def test_errors_that_are_not_lost_connections_are_not_retried():
    calls = []

    def bad_data() -> None:
        calls.append(1)
        raise sqlalchemy.exc.DataError("INSERT", {}, ValueError("value too long"))

    assert not is_connection_error(sqlalchemy.exc.DataError("INSERT", {}, ValueError("value too long")))
    with pytest.raises(sqlalchemy.exc.DataError):
        OutageWait(URL, window_s=30).retry(functools.partial(bad_data))
    assert calls == [1]


def test_an_outage_masked_by_another_error_comes_out_as_itself():
    outage = StorageOutage("the Optuna storage did not answer")
    with pytest.raises(StorageOutage) as raised, outages_surfaced():
        try:
            raise outage
        except StorageOutage:
            raise UnboundLocalError("cannot access local variable 'updated_state'") from None
    assert raised.value is outage
    with pytest.raises(KeyError), outages_surfaced():
        raise KeyError("not an outage")
