"""The GPU check: everything issue 22's targets are judged by, in one run that fits a device lease.

    bash benchmarks/device_bundle.sh        # here, once: wheels, the text and tiktoken's files
    bash benchmarks/device_check.sh         # there (the device tool: carry .whl and .device-data)

Prints, part by part as each ends (a run cut short still says what it measured):

1. training tokens/s at 124M / context 1024 / batch 32 in bf16, eager and ``--compile``d, against
   the bf16 matmul peak measured in the same run, and against nanoGPT's ``model.py`` (the reference
   from-scratch script) trained the way its ``train.py`` does, where ``--reference`` names that file;
2. ``runner.py sweep --trials 30`` on the default space as a user types it: wall time, and the
   trials' ``time_*_s`` split summed;
3. ``--space sweeps/full.yaml --trials 6``, the same way;
4. the default space with 1, 2, 4 and 8 ``--workers`` on the one GPU: trials per minute, and the
   GPU utilisation the runs' system metrics recorded.

The sweeps are whole ``runner.py`` processes, each on fresh stores in a temp folder. ``--tiny``
shrinks every part so that a CPU checks the script runs (a test does); it measures nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from benchmarks.options import data_option
from benchmarks.sweep_overhead import PHASES
from benchmarks.train_speed import (
    GPT2_1024,
    TINY,
    SpeedCase,
    cycle,
    flops_per_token,
    human,
    matmul_peak,
    project_tokens_per_sec,
    random_tokens,
    tokens_per_sec,
)
from gpt.device import choose_device
from gpt.errors import one_line
from process_setup import prepare_training_process
from sweeps.space import DEFAULT_SPACE

ROOT = Path(__file__).resolve().parent.parent
FULL_SPACE = DEFAULT_SPACE.with_name("full.yaml")
EXPERIMENT = "device-check"
GPU_UTILISATION = "system/gpu_0_utilization_percentage"


@dataclass(frozen=True)
class SweepCase:
    label: str
    arguments: tuple[str, ...]
    trials: int
    workers: int = 1


@dataclass(frozen=True)
class SweepTiming:
    wall_s: float
    runs: list[dict[str, float]]  # the metrics of each trial's run
    gpu_utilisation: float | None  # mean of the trial runs' samples, percent


def print_versions(device: torch.device, reason: str) -> None:
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({reason}): {name}; torch {torch.__version__}, {cuda}; Python {sys.version.split()[0]}")


def nanogpt_tokens_per_sec(model_file: Path, case: SpeedCase, device: torch.device, compiled: bool) -> float:
    """nanoGPT's GPT as its ``train.py`` trains it: its padded vocabulary (50,304), no bias, no dropout,
    bf16 autocast, its fused AdamW from ``configure_optimizers``, ``torch.compile`` when ``compiled``."""
    spec = importlib.util.spec_from_file_location("nanogpt_model", model_file)
    nanogpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nanogpt)
    model_config = case.model
    config = nanogpt.GPTConfig(
        block_size=model_config.context_length,
        vocab_size=50304 if model_config.vocab_size == 50257 else model_config.vocab_size,
        n_layer=model_config.n_layers,
        n_head=model_config.n_heads,
        n_embd=model_config.emb_dim,
        dropout=0.0,
        bias=False,
    )
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # its parameter counts and optimizer choice
        model = nanogpt.GPT(config).to(device)
        optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device.type)
    forward = torch.compile(model) if compiled else model
    length = model_config.context_length
    ids = torch.randint(0, model_config.vocab_size, ((case.steps + 2) * case.batch_size, length + 1))
    batches = cycle(torch.utils.data.DataLoader(ids, batch_size=case.batch_size, pin_memory=device.type == "cuda"))

    def step() -> None:
        batch = next(batches).to(device, non_blocking=True)
        inputs, targets = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()  # (B, T) each
        with torch.autocast(device.type, dtype=torch.bfloat16):
            _, loss = forward(inputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return tokens_per_sec(step, case, device)


def print_training_speed(device: str, tiny: bool, steps: int, reference: Path | None) -> None:
    torch_device, reason = choose_device(device)
    print_versions(torch_device, reason)
    size = 128 if tiny else 8192
    peak = matmul_peak(torch_device, bf16=True, size=size)
    print(f"bf16 matmul peak: {human(peak)}FLOP/s ({size}^3)")
    case = SpeedCase("124M/1024", TINY if tiny else GPT2_1024, 2 if tiny else 32, steps)
    tokens = random_tokens(case.model, windows=(case.steps + 2) * case.batch_size)
    prepare_training_process()
    print(f"\n1. training, {case.name}, batch {case.batch_size}, bf16, {steps} timed steps after one")
    print(f"{'path':<26}{'tokens/s':>12}{'FLOP/s':>11}{'of peak':>9}{'vs nanoGPT':>12}")

    def measure_row(label: str, reference_speed: float | None, measure: Callable[..., float], *args) -> float | None:
        """One row: tokens/s, FLOP/s, its share of the peak, and the ratio to nanoGPT's. A path that fails
        (a compile error, out of memory) prints why, and the next path still runs."""
        try:
            speed = measure(*args)
        except Exception as exc:  # one lease: every part that can run should
            print(f"{label:<26}failed: {one_line(exc)}", flush=True)
            return None
        achieved = speed * flops_per_token(case.model)
        versus = f"{speed / reference_speed:.2f}x" if reference_speed else ""
        print(f"{label:<26}{speed:>12.0f}{human(achieved):>11}{achieved / peak:>9.0%}{versus:>12}", flush=True)
        return speed

    for compiled in (False, True):
        mode = "compiled" if compiled else "eager"
        reference_speed = None
        if reference is not None:
            reference_speed = measure_row(
                f"nanoGPT, {mode}", None, nanogpt_tokens_per_sec, reference, case, torch_device, compiled
            )
        measure_row(f"project, {mode}", reference_speed, project_tokens_per_sec, case, tokens, device, "bf16", compiled)


def timed_sweep(case: SweepCase, data: str, device: str, folder: Path) -> SweepTiming | None:
    """``runner.py sweep`` as a whole process on fresh stores in ``folder``; its trial runs read back.
    None, with the sweep's last lines printed, when it fails: the parts after it still run."""
    from mlflow import MlflowClient

    folder.mkdir(parents=True)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    command = [sys.executable, str(ROOT / "runner.py"), "sweep", "--trials", str(case.trials),
               "--workers", str(case.workers), "--data", str(Path(data).resolve()), "--device", device,
               "--experiment", EXPERIMENT, "--tracking-uri", store, *case.arguments]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        print(f"{case.label}: failed, exit {done.returncode}:\n{done.stderr[-3000:]}", flush=True)
        return None
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    trial_runs = client.search_runs([experiment.experiment_id], "metrics.time_total_s >= 0", max_results=1000)
    samples = [
        point.value
        for run in trial_runs
        if GPU_UTILISATION in run.data.metrics
        for point in client.get_metric_history(run.info.run_id, GPU_UTILISATION)
    ]
    return SweepTiming(
        wall_s,
        [run.data.metrics for run in trial_runs],
        statistics.mean(samples) if samples else None,
    )


def print_sweep(case: SweepCase, timing: SweepTiming) -> None:
    summed = {phase: sum(run[f"time_{phase}_s"] for run in timing.runs) for phase in (*PHASES, "total")}
    split = ", ".join(f"{phase} {summed[phase]:.1f}" for phase in PHASES)
    other = summed["total"] - sum(summed[phase] for phase in PHASES)
    print(
        f"{case.label}: {timing.wall_s:.1f} s wall for {len(timing.runs)} trial runs; summed over them "
        f"{summed['total']:.1f} s ({split}, other {other:.1f})",
        flush=True,
    )


def print_sweep_times(
    parts: set[int], data: str, device: str, tiny: bool, spaces: tuple[Path, Path], folder: Path
) -> None:
    """Parts 2 and 3: the default and the full space's sweeps, as a user types them."""
    trials, full_trials = (1, 1) if tiny else (30, 6)
    shrink = ("--confirm", "0") if tiny else ()
    for part, space, count in ((2, spaces[0], trials), (3, spaces[1], full_trials)):
        if part in parts:
            case = SweepCase(
                f"{part}. sweep --space {space.name} --trials {count}", ("--space", str(space), *shrink), count
            )
            timing = timed_sweep(case, data, device, folder / f"part-{part}")
            if timing is not None:
                print_sweep(case, timing)


def print_worker_scaling(
    data: str, device: str, space: Path, worker_counts: list[int], trials: int, folder: Path
) -> None:
    """Part 4: the same sweep with more workers on the one device, in trials per minute."""
    print(f"\n4. {space.name}, --trials {trials} --confirm 0, workers sharing the one device")
    print(f"{'workers':>7}{'wall s':>9}{'trials/min':>12}{'vs 1 worker':>13}{'GPU util %':>12}")
    per_minute: dict[int, float] = {}
    for workers in worker_counts:
        case = SweepCase(f"{workers} workers", ("--space", str(space), "--confirm", "0"), trials, workers)
        timing = timed_sweep(case, data, device, folder / f"workers-{workers}")
        if timing is None:
            continue
        per_minute[workers] = len(timing.runs) / timing.wall_s * 60
        versus = f"{per_minute[workers] / per_minute[1]:.2f}x" if 1 in per_minute else ""
        utilisation = f"{timing.gpu_utilisation:.0f}" if timing.gpu_utilisation is not None else "-"
        print(f"{workers:>7}{timing.wall_s:>9.1f}{per_minute[workers]:>12.1f}{versus:>13}{utilisation:>12}", flush=True)


def number_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers from 1, such as 1,2,4,8")
    return numbers


@click.command()
@data_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--parts", default="1,2,3,4", show_default=True, callback=number_list, help="Which parts to run.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Timed training steps.")
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="nanoGPT's model.py, trained beside the project's path [default: none, its rows left out].",
)
@click.option("--space", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=DEFAULT_SPACE)
@click.option("--full-space", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=FULL_SPACE)
@click.option("--workers", "worker_counts", default="1,2,4,8", show_default=True, callback=number_list)
@click.option("--worker-trials", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--tiny", is_flag=True, help="Tiny models and sweeps: checks the script runs, measures nothing.")
def main(
    data: str,
    device: str,
    parts: list[int],
    steps: int,
    reference: Path | None,
    space: Path,
    full_space: Path,
    worker_counts: list[int],
    worker_trials: int,
    tiny: bool,
) -> None:
    if not set(parts) <= {1, 2, 3, 4}:
        raise click.BadParameter(
            f"there are parts 1 to 4, not {sorted(set(parts) - {1, 2, 3, 4})}", param_hint="--parts"
        )
    started = time.perf_counter()
    if 1 in parts:
        print_training_speed(device, tiny, steps, reference)
    with tempfile.TemporaryDirectory(prefix="gpt-device-check-") as folder:
        print()
        print_sweep_times(set(parts), data, device, tiny, (space, full_space), Path(folder))
        if 4 in parts:
            print_worker_scaling(data, device, space, worker_counts, worker_trials, Path(folder))
    print(f"\ndevice check: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
