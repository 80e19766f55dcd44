"""`runner.py single` end to end: real gpt2 encoding, real text, a real MLflow store in a temp folder."""

import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from support import REPO, VERDICT, StopAt, start_until_checkpointed

import runner
from gpt.checkpoint import load_checkpoint, restore_model
from gpt.config import PRESETS, read_config_file, resolve_config
from gpt.environment import prepare_environment
from tracking.run_options import RunOptions
from tracking.runs import holder_is_gone, process_tags, tracked_run
from tracking.single import run_single
from tracking.store import connect, experiment_id
from tracking.training import CHECKPOINT_FILE, train_tracked


def only_run(tracking_uri: str):
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.slow
def test_quick_mode_end_to_end_leaves_one_complete_run(store, verdict, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "runner.py"), "single", "--data", str(verdict), "--tracking-uri", store],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in ("Device: CPU", "Tokenizer: GPT-2 (tiktoken)", "Total params:    6,540,800", "Ep 1 (Step 000008)"):
        assert expected in out
    assert "Saved training loss plot to training_losses.png" in out and (tmp_path / "training_losses.png").is_file()

    client, run = only_run(store)
    assert run.info.status == "FINISHED" and run.info.run_id in out
    # What the UI shows: the runs view (not the GenAI one), a description, a source and a user.
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    description = run.data.tags["mlflow.note.content"]
    assert (
        description.startswith("**Single run**, mode `quick`: 6,540,800 parameters") and "best val loss" in description
    )
    assert run.data.tags["mlflow.source.name"] == "runner.py" and run.data.tags["mlflow.user"]
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
    params = run.data.params
    assert params["mode"] == "quick" and params["emb_dim"] == "64" and params["max_length"] == "128"
    assert "model_overrides" not in params and params["git_commit"]
    assert params["data_sha256"] == "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
    assert params["total_tokens"] == "5145" and params["device"] == "cpu" and params["seed"] == "123"
    val = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in val] == [0, 2, 4, 6, 8]
    assert 10.5 < val[0].value < 11.2 and val[-1].value < val[0].value
    for metric in ("train_loss", "tokens_seen", "learning_rate", "tokens_per_sec", "batch_loss", "best_val_loss"):
        assert client.get_metric_history(run.info.run_id, metric), metric
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"training_losses.png", "samples.txt", "config.yaml", "checkpoint"} <= artifacts

    local = client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts"))
    checkpoint = load_checkpoint(f"{local}/{CHECKPOINT_FILE}")
    model, config = restore_model(checkpoint)
    assert not model.training
    assert checkpoint["step"] == 8 and "optimizer_state_dict" in checkpoint and config == PRESETS["quick"]
    assert resolve_config("full", read_config_file(f"{local}/config.yaml")) == PRESETS["quick"]
    with open(f"{local}/samples.txt") as samples:
        assert "Every effort moves you" in samples.read()


def _bad(args, capsys):
    code = runner.main(["single", *args])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1"),
        (["--drop-rate", "1.5"], r"drop_rate must be in [0, 1)"),
        (["--n-heads", "3"], "emb_dim (64) must be divisible by n_heads (3)"),
        (["--learning-rate", "-1"], "learning_rate must be > 0"),
        (["--stride", "0"], "Invalid value for '--stride': 0 is not in the range x>=1"),
        (["--eval-tokens", "0"], "Invalid value for '--eval-tokens': 0 is not in the range x>=1"),
        (["--log-every", "0"], "Invalid value for '--log-every': 0 is not in the range x>=1"),
        (["--batch-size", "many"], "'many' is not a valid integer"),
        (["--mode", "huge"], "'huge' is not one of"),
        (["--device", "tpu"], "Invalid value for '--device': 'tpu' is not one of 'auto', 'cpu', 'cuda', 'mps'"),
        *(
            []
            if torch.cuda.is_available()
            else [(["--device", "cuda"], "device cuda was asked for, but CUDA is not available on this machine")]
        ),
        (["--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["--data", "missing.txt"], "data file not found: missing.txt"),
        (["--max-length", "8192"], "training split"),
        (["--output-dir", str(VERDICT)], f"cannot use output folder {VERDICT}: File exists"),
        (["--tracking-uri", "postgresql://u:secret@127.0.0.1:9/db"], "cannot reach the MLflow tracking store"),
        (
            ["--tracking-uri", "http://u:secret@127.0.0.1:9"],
            "cannot reach the MLflow tracking server http://u:***@127.0.0.1:9",
        ),
        (["--resume", "0123456789abcdef"], "no MLflow run '0123456789abcdef'"),
        (
            ["--resume", "0123456789abcdef", "--num-epochs", "3"],
            "--resume continues the run's own settings; drop --num-epochs",
        ),
    ],
)
def test_bad_values_answer_one_line_and_status_2(args, message, capsys, store, verdict):
    data = [] if "--data" in args or "--resume" in args else ["--data", str(verdict)]
    tracking = [] if "--tracking-uri" in args else ["--tracking-uri", store]
    code, err = _bad([*args, *data, *tracking], capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("Error: ")
    assert message in err
    assert "secret" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"\xff\xfe\xfa" * 50, "is not UTF-8 text"), (b"PK\x03\x04\x00\x00" * 50, "is binary")],
)
def test_unusable_data_files(content, message, capsys, store, tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    code, err = _bad(["--data", str(path), "--tracking-uri", store], capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert MlflowClient(store).search_runs(["0"]) == []  # nothing was started for bad data


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt(), "KILLED"), (RuntimeError("disk on fire"), "FAILED")]
)
def test_interrupted_and_failed_runs_are_closed(error, status, store, verdict, tiny_tokenizer):
    client = connect(store)
    config = PRESETS["quick"].update(vocab_size=257, emb_dim=16, n_heads=2, n_layers=1, max_length=32, batch_size=16)
    env = prepare_environment(config, str(verdict), "cpu", tokenizer=tiny_tokenizer)
    with pytest.raises(type(error)), tracked_run(client, experiment_id(client, "t"), "r") as run_id:
        train_tracked(env, client, run_id, [StopAt(3, error)], progress_bar=False)
    run = client.get_run(run_id)
    assert run.info.status == status
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "training_losses.png" in artifacts and "config.yaml" in artifacts  # what was logged stays
    if status == "KILLED":
        assert run.data.tags["checkpoint"] == CHECKPOINT_FILE
        local = client.download_artifacts(run_id, CHECKPOINT_FILE)
        assert load_checkpoint(local)["step"] == 3
    else:
        assert run.data.tags["error"] == "RuntimeError: disk on fire"


def batch_losses(client: MlflowClient, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "batch_loss"))


@pytest.mark.slow
def test_resume_continues_the_same_run_with_the_losses_of_an_uninterrupted_one(store, verdict, capsys):
    overrides = {"num_epochs": 2, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "max_length": 16, "stride": 32}
    config = resolve_config("quick", None, {**overrides, "eval_freq": 10})
    options = RunOptions(data=str(verdict), device="cpu", tracking_uri=store)
    whole = run_single(config, "quick", options)
    steps = whole.history.step + 1
    with pytest.raises(KeyboardInterrupt):  # stopped in the first epoch, between two evaluations
        run_single(config, "quick", options, callbacks=[StopAt(13, KeyboardInterrupt())])
    client = MlflowClient(store)
    (stopped,) = [r.info.run_id for r in client.search_runs([whole.experiment_id]) if r.info.status == "KILLED"]

    assert runner.main(["single", "--resume", stopped, "--tracking-uri", store, "--device", "cpu"]) == 0
    assert "Resuming MLflow run" in capsys.readouterr().out
    run = client.get_run(stopped)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_after_step"] == "13"
    resumed = batch_losses(client, stopped)
    assert [step for step, _ in resumed] == list(range(steps))
    assert resumed == batch_losses(client, whole.run_id)
    val = [m.value for m in sorted(client.get_metric_history(stopped, "val_loss"), key=lambda m: m.step)]
    assert val == [e.val_loss for e in whole.history.evals]

    assert runner.main(["single", "--resume", stopped, "--tracking-uri", store]) == 2
    assert f"already trained all {steps} steps" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_from_a_truncated_checkpoint_is_one_line(store, verdict, capsys):
    config = resolve_config("quick", None, {"num_epochs": 1, "emb_dim": 16, "n_heads": 2, "n_layers": 1})
    options = RunOptions(data=str(verdict), device="cpu", tracking_uri=store)
    with pytest.raises(KeyboardInterrupt):
        run_single(config, "quick", options, callbacks=[StopAt(2, KeyboardInterrupt())])
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    checkpoint = Path(urllib.parse.urlparse(run.info.artifact_uri).path) / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:4096])
    capsys.readouterr()
    assert runner.main(["single", "--resume", run.info.run_id, "--tracking-uri", store]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be read" in err and len(err.splitlines()) == 1
    assert client.get_run(run.info.run_id).info.status == "KILLED"  # untouched, not left RUNNING


@pytest.mark.slow
def test_a_single_run_loads_neither_optuna_nor_the_sweeps_nor_pyplot(store, verdict, tmp_path):
    """The sweeps package, its settings module and the durations they read (``sweeps.clock``) are
    declarations the CLI builds its flags from."""
    args = ["single", "--data", str(verdict), "--tracking-uri", store, "--num-epochs", "1", "--emb-dim", "16",
            "--n-heads", "2", "--n-layers", "1", "--max-length", "16", "--stride", "256"]  # fmt: skip
    code = (
        f"import sys, runner; status = runner.main({args!r}); "
        "print('status', status, 'loaded:', sorted(m for m in sys.modules "
        "if m in ('optuna', 'matplotlib.pyplot') or m.startswith('sweeps.') "
        "and m not in ('sweeps.settings', 'sweeps.clock')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert "status 0 loaded: []" in result.stdout, result.stdout + result.stderr


@pytest.mark.serial
@pytest.mark.slow
def test_sigterm_stops_a_single_run_killed_with_its_checkpoint_and_resume_finishes_it(store, verdict, tmp_path):
    runner_py = [sys.executable, str(REPO / "runner.py")]
    tiny = ["--emb-dim", "16", "--n-heads", "2", "--n-layers", "1", "--max-length", "16"]
    command = [*runner_py, "single", "--data", str(verdict), "--tracking-uri", store, "--num-epochs", "3", *tiny]
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    for line in process.stdout:  # the first evaluation line: it is training
        if line.startswith("Ep 1 "):
            break
    process.send_signal(signal.SIGTERM)  # as a scheduler, `docker stop` or `kill PID` stop it
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 143, output
    assert "Stopped by SIGTERM" in output and "Traceback" not in output

    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert f"python runner.py single --resume {run.info.run_id}" in output
    assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "SIGTERM"
    assert run.data.tags["checkpoint"] == CHECKPOINT_FILE
    resume = [*runner_py, "single", "--resume", run.info.run_id, "--tracking-uri", store]
    resumed = subprocess.run(resume, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


@pytest.mark.serial
@pytest.mark.slow
def test_a_run_killed_outright_resumes_from_its_periodic_checkpoint_with_the_uninterrupted_losses(
    store, verdict, tmp_path, capsys
):
    """SIGKILL (the OOM killer, a preempted VM): no handler runs and the run stays RUNNING. The
    checkpoint written every 20 steps is there; --resume sees the process is gone and goes on."""
    runner_py = [sys.executable, str(REPO / "runner.py")]
    command = [*runner_py, "single", "--data", str(verdict), "--tracking-uri", store, "--precision", "fp32",
               "--emb-dim", "16", "--n-heads", "2", "--n-layers", "1", "--max-length", "16", "--eval-freq", "25",
               "--max-steps", "300", "--checkpoint-every", "20", "--no-system-metrics"]  # fmt: skip
    process, run_id = start_until_checkpointed(command, tmp_path, store)
    client = MlflowClient(store)
    assert runner.main(["single", "--resume", run_id, "--tracking-uri", store]) == 2
    assert f"is still RUNNING in process {process.pid}" in capsys.readouterr().err
    process.kill()
    process.wait(timeout=30)
    assert client.get_run(run_id).info.status == "RUNNING", "the run ended before it could be killed"
    killed_at = load_checkpoint(client.download_artifacts(run_id, CHECKPOINT_FILE))["step"]
    assert killed_at < 299 and (killed_at + 1) % 20 == 0

    assert runner.main(["single", "--resume", run_id, "--tracking-uri", store, "--device", "cpu"]) == 0
    assert "which is gone; resuming it" in capsys.readouterr().out
    assert client.get_run(run_id).info.status == "FINISHED"
    whole = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    (whole_id,) = [r.info.run_id for r in client.search_runs([client.get_run(run_id).info.experiment_id])
                   if r.info.run_id != run_id]  # fmt: skip

    def final_history(run):
        return load_checkpoint(client.download_artifacts(run, CHECKPOINT_FILE))["history"]

    resumed, uninterrupted = final_history(run_id), final_history(whole_id)
    assert [step for step, _ in resumed["batch_losses"]] == list(range(300))
    assert resumed["batch_losses"] == uninterrupted["batch_losses"]

    def without_speed(evals):
        return [{k: v for k, v in e.items() if k != "tokens_per_sec"} for e in evals]

    assert without_speed(resumed["evals"]) == without_speed(uninterrupted["evals"])
    # Steps logged after the checkpoint and before the kill were trained again: logged twice, same value.
    assert set(batch_losses(client, run_id)) == set(batch_losses(client, whole_id))


def test_a_running_run_is_dead_only_when_its_process_is(store):
    client = MlflowClient(store)
    experiment = experiment_id(client, "holders")
    assert holder_is_gone(client.create_run(experiment, tags=process_tags())) is False
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {**process_tags(), "process.pid": finished.stdout.strip()}
    assert holder_is_gone(client.create_run(experiment, tags=dead)) is True
    reused = {**process_tags(), "process.started": "12.00"}  # this pid, but another process's start time
    assert holder_is_gone(client.create_run(experiment, tags=reused)) is True
    elsewhere = {**process_tags(), "process.host": "another-machine"}
    assert holder_is_gone(client.create_run(experiment, tags=elsewhere)) is None
