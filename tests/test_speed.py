"""The fast path computes the plain implementation's function; the speed benchmark keeps running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support import REPO, SPACE, write_space

from benchmarks.plain_gpt import PlainGPT, load_into, plain_step
from benchmarks.train_speed import ids_only_vocabulary, random_tokens
from gpt import device as device_module
from gpt.config import ModelConfig, TrainingConfig
from gpt.device import resolve_precision
from gpt.environment import prepare_environment
from gpt.model import GPTModel
from gpt.training import train_step

MODEL = ModelConfig(vocab_size=300, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0)


def plain_and_fast(qkv_bias: bool = False) -> tuple[PlainGPT, GPTModel]:
    config = ModelConfig(**{**MODEL.to_dict(), "qkv_bias": qkv_bias})
    torch.manual_seed(0)
    plain, fast = PlainGPT(config), GPTModel(config)
    load_into(fast, plain)
    return plain, fast


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_fast_model_gives_the_plain_models_logits(qkv_bias):
    plain, fast = plain_and_fast(qkv_bias)
    ids = torch.randint(0, MODEL.vocab_size, (3, MODEL.context_length))
    with torch.no_grad():
        difference = (plain.eval()(ids) - fast.eval()(ids)).abs().max().item()
    assert difference < 1e-4


def test_fast_training_path_gives_the_plain_losses():
    tokens = random_tokens(MODEL, windows=16)
    config = TrainingConfig(
        batch_size=4, max_length=32, stride=32, learning_rate=1e-3, weight_decay=0.1, precision="fp32", model=MODEL
    )
    env = prepare_environment(config, device="cpu", tokenizer=ids_only_vocabulary(MODEL), tokens=tokens)
    plain, _ = plain_and_fast()
    load_into(env.model, plain)  # in place: the optimizer keeps the same parameters
    matrices = [p for p in plain.parameters() if p.dim() >= 2]  # decayed; gains and biases not (nanoGPT's way)
    vectors = [p for p in plain.parameters() if p.dim() < 2]
    groups = [{"params": matrices, "weight_decay": 0.1}, {"params": vectors, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    plain.train()
    for inputs, targets in list(env.train_loader)[:4]:
        expected = plain_step(plain, optimizer, inputs, targets)
        assert train_step(env, inputs, targets, 1e-3).item() == pytest.approx(expected, rel=1e-5)


def test_auto_precision_uses_bf16_only_where_the_cpu_has_it(monkeypatch):
    cpu = torch.device("cpu")
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    this_cpu = "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "fp32"
    assert resolve_precision("auto", cpu) == this_cpu  # this machine, read without the predicate under test
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"


def test_help_imports_neither_torch_nor_mlflow_nor_optuna():
    code = (
        "import sys, runner; status = runner.main(['--help']); "
        "print('status:', status, 'heavy:', sorted(m for m in ('torch', 'mlflow', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "status: 0 heavy: []" in out
    assert "Usage: runner.py" in out
    assert all(f"  {command} " in out for command in ("single", "sweep", "best", "ui", "generate"))


@pytest.mark.slow
def test_speed_benchmark_runs_in_its_tiny_form(verdict):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_speed", "--tiny", "--steps", "2", "--data", str(verdict)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^matmul peak: fp32 [\d.]+[kMGT]?FLOP/s", out, re.MULTILINE)
    for model in ("quick", "124M"):  # plain and project tokens/s, their ratio, the project's FLOP/s
        row = re.search(rf"^{model}\s+(\d+)\s+(\d+)\s+([\d.]+)x\s", out, re.MULTILINE)
        assert row and int(row[1]) > 0 and int(row[2]) > 0
        assert float(row[3]) == pytest.approx(int(row[2]) / int(row[1]), abs=0.01)
    assert re.search(r"^tracking overhead .*: [\d.]+ s -> [\d.]+ s, [-+][\d.]+%$", out, re.MULTILINE)
    assert re.search(r"^runner.py --help: [\d.]+ s$", out, re.MULTILINE)
    for run in ("quick, 3 epochs", "full, 1 epoch"):
        row = re.search(rf"^{run}\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.MULTILINE)
        assert row and float(row[1]) > 0 and float(row[2]) > 0


@pytest.mark.slow
def test_device_check_runs_in_its_tiny_form(tmp_path, verdict):
    """The GPU check runs on a lent machine's few minutes; here its tiny form proves every part still runs."""
    space = write_space(tmp_path, SPACE)
    command = [sys.executable, "-m", "benchmarks.device_check", "--tiny", "--device", "cpu", "--steps", "1",
               "--data", str(verdict), "--full-space", str(space), "--space", str(space),
               "--parts", "1,3,4", "--workers", "1,2", "--worker-trials", "1"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^device: cpu .*torch [\d.]+.*, no CUDA", out, re.MULTILINE)
    assert re.search(r"^bf16 matmul peak: [\d.]+[kMGT]?FLOP/s", out, re.MULTILINE)
    for path in ("project, eager", "project, compiled"):
        row = re.search(rf"^{path}\s+(\d+)\s+[\d.]+[kMGT]?\s+\d+%", out, re.MULTILINE)
        assert row and int(row[1]) > 0
    part_3 = r"^3\. sweep --space tiny.yaml --trials 1: ([\d.]+) s wall for 1 trial runs; summed over them ([\d.]+) s"
    line = re.search(part_3, out, re.MULTILINE)
    assert line and 0 < float(line[2]) < float(line[1])
    assert "2. sweep" not in out
    rows = {int(row[1]): row for row in re.finditer(r"^\s+(\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+-$", out, re.M)}
    assert set(rows) == {1, 2} and float(rows[1][4]) == 1.0
    assert float(rows[2][4]) == pytest.approx(float(rows[1][2]) / float(rows[2][2]), abs=0.01)  # wall 1 / wall 2


def test_a_runner_process_freezes_its_objects_once_every_other_exit_handler_ran():
    """The interpreter's teardown then skips its collections over them (benchmarks.process_exit)."""
    code = (
        "import atexit, gc, sys; "
        "atexit.register(lambda: print('frozen at the end:', gc.get_freeze_count() > 0)); "
        "sys.argv = ['runner.py', '--help']; import runner; runner.main_entry()"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True).stdout
    assert "Usage: runner.py" in out and out.rstrip().endswith("frozen at the end: True")
