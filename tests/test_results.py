"""Results people use: text from a run's checkpoint, the registered best model, the UI on a served store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
from mlflow import MlflowClient
from support import REPO, SPACE, free_port, study_at, sweep, write_space

import runner
from gpt.config import resolve_config
from gpt.data import gpt2_encoding
from gpt.generation import SamplingSettings, continue_text
from gpt.model import GPTModel
from sweeps.study_runs import RUN_ID_ATTR
from tracking.mlflow_internals import fluent_calls_on
from tracking.models import register_run_model
from tracking.run_options import RunOptions
from tracking.single import run_single
from tracking.training import CHECKPOINT_FILE
from tracking.ui import exposure_warning

TINY_SINGLE = ["--no-system-metrics", "--num-epochs", "1", "--emb-dim", "16", "--n-heads", "2", "--n-layers", "1"]
TINY_SINGLE += ["--max-length", "16", "--stride", "256"]


def train_tiny(store: str, verdict: Path) -> str:
    assert runner.main(["single", "--data", str(verdict), "--tracking-uri", store, *TINY_SINGLE]) == 0
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert not [name for name in run.data.metrics if name.startswith("system/")]  # --no-system-metrics
    return run.info.run_id


def generate(capsys, store: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = runner.main(["generate", "--tracking-uri", store, "--max-new-tokens", "8", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_generate_prints_the_prompt_and_a_repeatable_continuation(store, verdict, capsys):
    run_id = train_tiny(store, verdict)
    status, greedy, _ = generate(capsys, store, "--run-id", run_id, "--prompt", "I had always")
    assert status == 0 and greedy.startswith("I had always") and len(greedy.strip()) > len("I had always")
    assert generate(capsys, store, "--run-id", run_id, "--prompt", "I had always")[1] == greedy
    sampled = [
        generate(capsys, store, "--run-id", run_id, "--strategy", "top-k", "--top-k", "40", "--seed", "7")[1]
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1] and sampled[0].startswith("Every effort moves you")
    status, top_p, _ = generate(capsys, store, "--run-id", run_id, "--strategy", "top-p", "--temperature", "0.8")
    assert status == 0 and top_p.startswith("Every effort moves you")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run-id", "0123456789abcdef"], "no MLflow run '0123456789abcdef'"),
        (["--run-id", "RUN", "--top-k", "5"], "top_k applies to strategy top-k, not greedy"),
        (["--run-id", "RUN", "--strategy", "top-p", "--top-p", "1.5"], "top_p must be in (0, 1]"),
        (["--run-id", "RUN", "--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
        (["--run-id", "RUN", "--study", "s"], "give exactly one of --run-id and --study"),
        (["--study", "nothing-here"], "no Optuna storage at"),
    ],
)
@pytest.mark.slow
def test_generate_refuses_bad_input_in_one_line(store, verdict, capsys, args, message, request):
    run_id = request.getfixturevalue("trained_run") if "RUN" in args else ""
    status, _, err = generate(capsys, store, *[run_id if a == "RUN" else a for a in args])
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def trained_run(store, verdict) -> str:
    return train_tiny(store, verdict)


@pytest.mark.slow
def test_a_truncated_checkpoint_is_one_clear_line(store, verdict, capsys):
    run_id = train_tiny(store, verdict)
    run = MlflowClient(store).get_run(run_id)
    checkpoint = Path(urllib.parse.urlparse(run.info.artifact_uri).path) / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    status, _, err = generate(capsys, store, "--run-id", run_id)
    assert status == 2 and f"the checkpoint of run {run_id} cannot be read" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_sweep_registers_its_best_model_once(store, verdict, tmp_path, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "2") == 0
    assert "Best model registered as models:/gpt-sweep-tiny/1" in capsys.readouterr().out
    best_run = study_at(tmp_path).best_trial.user_attrs[RUN_ID_ATTR]

    with fluent_calls_on(store, "0"):  # for this call only: a process-wide URI would outlive the test
        model = mlflow.pytorch.load_model("models:/gpt-sweep-tiny/1")
    assert isinstance(model, GPTModel)
    text = continue_text(model, gpt2_encoding(), "Every effort moves you", SamplingSettings(max_new_tokens=5))
    assert text.startswith("Every effort moves you")
    client = MlflowClient(store)
    (version,) = client.search_model_versions("name = 'gpt-sweep-tiny'")
    run = client.get_run(best_run)
    assert version.run_id == best_run and run.info.status == "FINISHED"
    (output,) = run.outputs.model_outputs  # the registered model, logged as the run's output
    assert version.source == f"models:/{output.model_id}"
    linked = {m.key: m for m in client.get_logged_model(output.model_id).metrics}
    assert linked["val_loss"].step == int(run.data.metrics["best_val_step"])  # the best step's, not step 0's
    assert linked["val_loss"].value == pytest.approx(run.data.metrics["best_val_loss"])

    status, out, _ = generate(capsys, store, "--study", "sweep-tiny")
    assert status == 0 and out.startswith("Every effort moves you")
    assert sweep(space, store, verdict, "--trials", "2") == 0  # nothing new to run or register
    assert len(MlflowClient(store).search_model_versions("name = 'gpt-sweep-tiny'")) == 1


@pytest.mark.slow
def test_a_registered_model_carries_its_best_steps_losses_and_leaves_its_run_as_it_was(store, verdict, tmp_path):
    # A high learning rate on this short text: the val loss is lowest before the last step (35 of 39 here).
    overrides = {"max_steps": 40, "eval_freq": 5, "learning_rate": 1e-2, "final_eval_tokens": 512, "precision": "fp32"}
    config = resolve_config("quick", None, overrides)
    options = RunOptions(data=str(verdict), device="cpu", tracking_uri=store, system_metrics=False)
    result = run_single(config, "quick", options, output_dir=tmp_path)
    client = MlflowClient(store)
    before = client.get_run(result.run_id)
    best_step = int(before.data.metrics["best_val_step"])
    assert best_step < result.history.step  # else this test could not tell the best step from the last

    assert register_run_model(client, result.run_id, "best-step") == "models:/best-step/1"
    after = client.get_run(result.run_id)
    assert (after.info.status, after.info.start_time, after.info.end_time) == (
        before.info.status, before.info.start_time, before.info.end_time)  # fmt: skip
    (output,) = after.outputs.model_outputs
    linked = {m.key: m for m in client.get_logged_model(output.model_id).metrics}
    assert linked["val_loss"].step == best_step != result.history.step
    assert linked["val_loss"].value == pytest.approx(before.data.metrics["best_val_loss"])
    assert register_run_model(client, result.run_id, "best-step") == "models:/best-step/1"  # nothing new


def get_json(url: str, body: dict | None = None) -> dict:
    """GET ``url``, or POST ``body`` as JSON to it, the way the UI's own pages call the REST API."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.fixture
def served_store(tmp_path):
    """``runner.py ui`` on loopback over a fresh SQLite store; yields its address."""
    port = free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "runner.py"),
            "ui",
            "--port",
            str(port),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'served.db'}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        for line in ui.stdout:
            if f"at {url}" in line:
                break
            assert time.monotonic() < deadline and ui.poll() is None, "runner.py ui never printed its address"
        yield url
    finally:
        ui.send_signal(signal.SIGTERM)  # as a service manager stops it: runner.py stops mlflow and its helpers
        assert ui.wait(timeout=30) == 143
        with socket.socket() as probe:  # the port is free again: no server was left listening
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger
            probe.bind(("127.0.0.1", port))


@pytest.mark.slow
def test_the_ui_shows_a_run_logged_through_it(served_store, verdict, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = train_tiny(served_store, verdict)
    api = f"{served_store}/api/2.0/mlflow"
    experiment = get_json(f"{api}/experiments/get-by-name?experiment_name=gpt-from-scratch")["experiment"]
    runs = get_json(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})
    assert [r["info"]["run_id"] for r in runs["runs"]] == [run_id]
    assert runs["runs"][0]["info"]["status"] == "FINISHED"
    history = get_json(f"{api}/metrics/get-history?run_id={run_id}&metric_key=val_loss")["metrics"]
    assert len(history) >= 1 and all(m["value"] > 0 for m in history)
    listed = {f["path"] for f in get_json(f"{api}/artifacts/list?run_id={run_id}")["files"]}
    assert {"config.yaml", "training_losses.png", "samples.txt", "checkpoint"} <= listed

    status, out, _ = generate(capsys, served_store, "--run-id", run_id, "--prompt", "I had")
    assert status == 0 and out.startswith("I had")


def test_the_ui_warns_when_it_serves_beyond_loopback():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_warning(host, 5000) is None, host
    for host in ("0.0.0.0", "::", "192.168.1.20", "trackinghost"):
        warning = exposure_warning(host, 5000)
        assert f"on {host}:5000 without authentication" in warning and "delete every run" in warning
        assert len(warning.splitlines()) == 1


def test_ui_on_a_taken_port_is_one_line(store, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert runner.main(["ui", "--port", str(port), "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
