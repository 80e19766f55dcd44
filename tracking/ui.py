"""``runner.py ui``: MLflow's UI on the very store the runner writes to."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from gpt.errors import UserError
from tracking.store import redacted

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60


def ui_command(tracking_uri: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


def check_port_free(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise UserError(f"port must be in 1..65535 (got {port})")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As the server will: connections a stopped server closed may linger, a listening socket may not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def exposure_warning(host: str, port: int) -> str | None:
    """What serving on a non-loopback ``host`` exposes: ``mlflow ui`` asks no one for a login."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it names an interface other machines may reach
        loopback = False
    if loopback:
        return None
    return (
        f"Warning: serving on {host}:{port} without authentication: anyone who reaches this port can read "
        "and delete every run; keep the default 127.0.0.1 (an SSH tunnel reaches it) or share the store "
        "through `mlflow server --app-name basic-auth` (README: Several machines)"
    )


def wait_until_ready(process: subprocess.Popen, url: str) -> None:
    """Return once the UI answers ``/health``; a server that exits or stays silent is an error."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"mlflow ui exited with status {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    stop_group(process)
    raise UserError(f"mlflow ui did not answer at {url} within {READY_TIMEOUT_S} s")


def serve_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Start ``mlflow ui`` for ``tracking_uri``, print its address, and serve until Ctrl-C or SIGTERM."""
    if tracking_uri.startswith(("http://", "https://")):
        log.info(f"The store is already served by a tracking server: open {redacted(tracking_uri)}")
        return
    check_port_free(host, port)
    warning = exposure_warning(host, port)
    if warning:
        log.warning(warning)
    url = f"http://{host}:{port}"
    # Browsing needs no background job runner (7 more processes); its own session, so that the
    # helper processes mlflow still starts stop with it.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(ui_command(tracking_uri, host, port), env=env, start_new_session=True)
    try:
        wait_until_ready(process, url)
        log.info(f"MLflow UI for {redacted(tracking_uri)} at {url} (Ctrl-C stops it)")
        # MLflow 3's UI opens on its GenAI pages until "Model training" is picked at the top left; this link picks it.
        log.info(f"Runs and sweeps: {url}/#/experiments?workflowType=machine_learning")
        process.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the server and its helpers go too (below)
        log.info("Stopping the MLflow UI")
        raise
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the server and every helper it started, then wait for the server."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
