"""The packages change nothing process-wide; the entry points' set-up (``process_setup``) does it all."""

import json
import os
import subprocess
import sys

import pytest
from support import REPO

# Runs in a fresh interpreter: the third-party libraries are imported first (their own import-time
# set-up is theirs), then the state is read, then every module of ours is imported and a single run,
# its registered model, a sample from it and a two-trial sweep go through the library, then the
# state is read again.
SNAPSHOT_AND_RUN = r"""
import json, logging, os, pkgutil, importlib, signal, sys
from pathlib import Path
import matplotlib, mlflow, mlflow.pytorch, optuna, torch  # mlflow.pytorch's import calls logging.basicConfig

def state():
    loggers = {name: logger.level for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET}
    return {
        "environ": dict(os.environ),
        "tracking_uri": mlflow.get_tracking_uri(),
        "loggers": loggers,
        "root_level": logging.root.level,
        "optuna_verbosity": optuna.logging.get_verbosity(),
        "threads": torch.get_num_threads(),
        "tf32": [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32],
        "backend": matplotlib.get_backend(),
        "signals": [str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM)],
        "cwd": os.getcwd(),
    }

verdict, folder = sys.argv[1], Path(sys.argv[2])
before = state()
for package in ("gpt", "tracking", "sweeps"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)

from gpt.config import resolve_config
from gpt.generation import SamplingSettings
from sweeps.settings import SweepSettings
from sweeps.sweep import run_sweep
from tracking.models import register_run_model, sample_from_run
from tracking.run_options import RunOptions
from tracking.single import run_single
from tracking.store import connect

store = f"sqlite:///{folder / 'mlflow.db'}"
config = resolve_config("quick", None, {"max_steps": 4, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                                        "max_length": 16, "final_eval_tokens": 512})
options = RunOptions(data=verdict, device="cpu", tracking_uri=store, system_metrics=False)
run = run_single(config, "quick", options, output_dir=folder)
register_run_model(connect(store), run.run_id, "purity")
sample_from_run(store, run.run_id, "Every effort", SamplingSettings.for_strategy("greedy", None, None, None, 3))
space = folder / "space.yaml"
space.write_text(
    "base: {mode: quick, overrides: {max_steps: 4, emb_dim: 16, n_heads: 2, n_layers: 1, final_eval_tokens: 512}}\n"
    "params: {max_length: {type: categorical, choices: [16, 32]}}\n"
)
settings = SweepSettings.in_folder(folder, space, 2, data=verdict, device="cpu", confirm=0, system_metrics=False)
run_sweep(settings, worker_setup=lambda placement: None)
print("REGISTERED " + " ".join(v.name for v in connect(store).search_model_versions("name = 'gpt-sweep-space'")))
print("STATE " + json.dumps({"before": before, "after": state()}))
"""


# Set by third-party code on first use, not by ours: scikit-learn's import (which MLflow's model
# logging pulls in) and the cache directory of torch's inductor.
THIRD_PARTY_ENV = {"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK", "TORCHINDUCTOR_CACHE_DIR"}


@pytest.mark.slow
def test_the_packages_change_nothing_process_wide(verdict, tmp_path):
    folder = tmp_path / "sweep"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", SNAPSHOT_AND_RUN, str(verdict), str(folder)],
        cwd=tmp_path,  # a store resolved from the process-wide default would land here, not in the repo
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("STATE ")]
    states = json.loads(line.removeprefix("STATE "))
    before, after = states["before"], states["after"]
    changed = {k for k in before["environ"].keys() | after["environ"].keys()
               if before["environ"].get(k) != after["environ"].get(k)}  # fmt: skip
    assert changed <= THIRD_PARTY_ENV
    # MLflow's database migrations configure loggers of their own (sqlalchemy, a migration's name) as they run.
    watched = ("gpt", "tracking", "sweeps", "mlflow", "optuna", "alembic", "matplotlib")
    assert {k: v for k, v in after["loggers"].items() if k in before["loggers"] or k.startswith(watched)} == before[
        "loggers"
    ]
    del before["environ"], after["environ"], before["loggers"], after["loggers"]
    for key in before:
        assert after[key] == before[key], key
    assert not (tmp_path / "mlflow.db").exists()  # (artifacts do land in ./mlruns: MLflow's default root)
    assert "REGISTERED gpt-sweep-space" in result.stdout  # the sweep ran to its end
