"""How fast does the project train, against a plain implementation measured in the same run?

    python -m benchmarks.train_speed --data ../shared/data/the-verdict.txt

Prints one table: training tokens/s of the plain fp32 baseline (``benchmarks/plain_gpt.py``)
and of the project's own path for the quick model and the 124M model (context 256,
batch 2), their ratio, the achieved FLOP/s as a fraction of this machine's measured
fp32 and bf16 matmul peaks, MLflow tracking overhead, ``runner.py --help`` start-up,
and whole runs end to end: ``single`` quick for 3 epochs and full for 1 against the plain
script (``benchmarks/plain_run.py``) on the same config file, data, batches and
evaluations. Training speed is measured on random token ids (speed does not depend on
the text); tracking and end-to-end use ``--data``. ``--tiny`` shrinks every part so the
test suite can run it in seconds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from benchmarks.options import data_option
from benchmarks.plain_gpt import PlainGPT, PlainWindows, plain_step
from gpt.config import DEVICES, PRECISIONS, PRESETS, ModelConfig, TrainingConfig, resolve_config, write_config_file
from gpt.cost import training_flops_per_token
from gpt.data import TokenizedText
from gpt.device import choose_device, cpu_has_native_bf16, resolve_precision
from gpt.environment import load_tokens, prepare_environment
from gpt.training import train, train_step
from process_setup import prepare_training_process, quiet_mlflow

ROOT = Path(__file__).resolve().parent.parent
GPT2_124M = ModelConfig(context_length=256)
# The configuration of the widely used single-GPU GPT-2 scripts: context 1024, batch 32 (bf16, compiled).
GPT2_1024 = ModelConfig(context_length=1024)
TRACKING_PAIRS = 4
END_TO_END = (("quick", 3), ("full", 1))  # (mode, epochs) timed as whole processes
TINY = ModelConfig(vocab_size=512, context_length=32, emb_dim=32, n_heads=2, n_layers=2)


@dataclass(frozen=True)
class SpeedCase:
    name: str
    model: ModelConfig
    batch_size: int
    steps: int


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(run: Callable[[], object], device: torch.device, min_calls: int = 1, min_seconds: float = 0.0) -> float:
    """Seconds per call of ``run`` after one warm-up call, over at least ``min_calls`` calls and ``min_seconds``."""
    run()
    synchronize(device)
    calls, started = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < min_seconds:
        run()
        calls += 1
    synchronize(device)
    return (time.perf_counter() - started) / calls


def matmul_peak(device: torch.device, bf16: bool, size: int) -> float:
    """Measured FLOP/s of a square matmul, the ceiling the training paths are held against: its operands
    are made in bf16 (not cast by autocast on each call, which would count a cast's time as the matmul's)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = timed(lambda: a @ b, device, min_seconds=0.5)
    return 2 * size**3 / seconds


def flops_per_token(model: ModelConfig) -> float:
    """A training step's arithmetic per token at the model's whole context (``gpt.cost``)."""
    return training_flops_per_token(model, model.context_length)


def random_tokens(model: ModelConfig, windows: int, seed: int = 0) -> TokenizedText:
    length = windows * model.context_length + 1
    ids = torch.randint(0, model.vocab_size, (length,), generator=torch.Generator().manual_seed(seed)).numpy()
    return TokenizedText("random", "-", "random", ids, ids[: 2 * model.context_length + 1])


def cycle(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


def tokens_per_sec(step: Callable[[], None], case: SpeedCase, device: torch.device) -> float:
    return case.batch_size * case.model.context_length / timed(step, device, min_calls=case.steps)


def plain_tokens_per_sec(case: SpeedCase, tokens: TokenizedText, device: torch.device) -> float:
    torch.manual_seed(0)
    model = PlainGPT(case.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    length = case.model.context_length
    windows = PlainWindows(tokens.train_ids.tolist(), length, length)
    batches = cycle(torch.utils.data.DataLoader(windows, batch_size=case.batch_size, shuffle=True, drop_last=True))

    def step() -> None:
        inputs, targets = next(batches)
        plain_step(model, optimizer, inputs.to(device), targets.to(device))

    return tokens_per_sec(step, case, device)


def project_tokens_per_sec(
    case: SpeedCase, tokens: TokenizedText, device: str, precision: str, compile_model: bool
) -> float:
    length = case.model.context_length
    config = TrainingConfig(
        batch_size=case.batch_size,
        max_length=length,
        stride=length,
        learning_rate=1e-4,
        weight_decay=0.1,
        precision=precision,
        compile=compile_model,
        model=case.model,
    )
    env = prepare_environment(config, device=device, tokenizer=ids_only_vocabulary(case.model), tokens=tokens)
    batches = cycle(env.train_loader)

    def step() -> None:
        inputs, targets = next(batches)
        train_step(env, inputs, targets, config.learning_rate)

    return tokens_per_sec(step, case, env.device)


def ids_only_vocabulary(model: ModelConfig):
    """Speed runs need no text; an object with ``n_vocab`` passes the vocabulary check."""
    return type("RandomIds", (), {"n_vocab": model.vocab_size})()


def tracking_overhead(data: str, config: TrainingConfig, device: str) -> tuple[float, float]:
    """Seconds of the same training run without and with the MLflow reporter, alternated, best of
    ``TRACKING_PAIRS`` each: single runs on a shared machine vary by more than the overhead."""
    from tracking.reporter import MlflowReporter
    from tracking.store import connect, experiment_id

    tokens, tokenizer = load_tokens(data)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
        client = connect(f"sqlite:///{folder}/mlflow.db")
        experiment = experiment_id(client, "bench")
        for tracked in (False, True) * TRACKING_PAIRS:
            env = prepare_environment(config, device=device, tokenizer=tokenizer, tokens=tokens)
            run_id = client.create_run(experiment).info.run_id
            reporters = [MlflowReporter(client, run_id)] if tracked else []
            started = time.perf_counter()
            train(env, reporters, log_every=1, progress_bar=False)
            for reporter in reporters:
                reporter.flush()
            times[tracked].append(time.perf_counter() - started)
            client.set_terminated(run_id)
    return min(times[False]), min(times[True])


def command_seconds(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def human(value: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.1f}"


@click.command()
@data_option
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    show_default=True,
    help="The project path's precision.",
)
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the project's model.")
@click.option(
    "--steps", type=click.IntRange(min=1), default=5, show_default=True, help="Timed training steps per case."
)
@click.option("--batch-size-124m", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--gpt2-1024",
    is_flag=True,
    help="Only the GPU reference case: 124M, context 1024, batch 32 (with --precision bf16 --compile on a GPU).",
)
@click.option("--skip-tracking", is_flag=True, help="Skip the MLflow and CLI parts (a machine without them).")
@click.option(
    "--repeats", type=click.IntRange(min=1), default=1, show_default=True, help="End-to-end runs of each (best)."
)
@click.option("--tiny", is_flag=True, help="Tiny models and runs: checks the benchmark works, measures nothing useful.")
def main(
    data: str,
    device: str,
    precision: str,
    compile_model: bool,
    steps: int,
    batch_size_124m: int,
    gpt2_1024: bool,
    skip_tracking: bool,
    repeats: int,
    tiny: bool,
) -> None:
    torch_device, reason = choose_device(device)
    project_precision = resolve_precision(precision, torch_device)
    print(f"device: {torch_device} ({reason}); torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(f"project path precision: {project_precision}; compile: {compile_model}")
    fast_bf16 = torch_device.type == "cuda" or cpu_has_native_bf16()
    sizes = {"fp32": 2048, "bf16": 2048 if fast_bf16 else 512}  # emulated bf16 is too slow for a big one
    if torch_device.type == "cuda":
        sizes = {"fp32": 8192, "bf16": 8192}
    if tiny:
        sizes = {"fp32": 128, "bf16": 128}
    peaks = {name: matmul_peak(torch_device, name == "bf16", size) for name, size in sizes.items()}
    print("matmul peak: " + ", ".join(f"{name} {human(peaks[name])}FLOP/s ({sizes[name]}^3)" for name in peaks))

    cases = [
        SpeedCase("quick", TINY if tiny else PRESETS["quick"].model, 4, steps),
        SpeedCase("124M", TINY if tiny else GPT2_124M, batch_size_124m, steps),
    ]
    if gpt2_1024:
        cases = [SpeedCase("124M/1024", TINY if tiny else GPT2_1024, 2 if tiny else 32, steps)]
    tokens = {case.name: random_tokens(case.model, windows=(case.steps + 1) * case.batch_size) for case in cases}
    # Every plain case runs before the project's process-wide settings (allocator, TF32) are switched on.
    plain = {case.name: plain_tokens_per_sec(case, tokens[case.name], torch_device) for case in cases}
    prepare_training_process()
    print()
    print(
        f"{'model':<10}{'plain tok/s':>14}{'project tok/s':>15}{'ratio':>8}{'FLOP/s':>11}{'of fp32':>9}{'of bf16':>9}"
    )
    for case in cases:
        fast = project_tokens_per_sec(case, tokens[case.name], device, precision, compile_model)
        achieved = fast * flops_per_token(case.model)
        print(
            f"{case.name:<10}{plain[case.name]:>14.0f}{fast:>15.0f}{fast / plain[case.name]:>7.2f}x"
            f"{human(achieved):>11}{achieved / peaks['fp32']:>9.0%}{achieved / peaks['bf16']:>9.0%}"
        )

    if skip_tracking:
        return
    quiet_mlflow()
    print()
    shrink = {"max_length": 16, "stride": 512, "emb_dim": 16, "n_heads": 2, "n_layers": 1} if tiny else {}
    config = PRESETS["quick"].update(num_epochs=1, **shrink)
    untracked, tracked = tracking_overhead(data, config, device)
    print(
        f"tracking overhead (quick run, MLflow reporter on a SQLite store): {untracked:.2f} s -> {tracked:.2f} s, "
        f"{(tracked - untracked) / untracked:+.1%}"
    )
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
        help_s = min(
            command_seconds([sys.executable, str(ROOT / "runner.py"), "--help"], Path(folder)) for _ in range(3)
        )
        print(f"runner.py --help: {help_s:.2f} s")
        print()
        print_end_to_end(data, device, shrink, repeats, Path(folder))


def print_end_to_end(text: str, device: str, shrink: dict, repeats: int, folder: Path) -> None:
    """Whole processes, plain script against ``runner.py single``, on one config file each, alternated;
    ``text`` is a local file (``--data`` resolves a URL or the default to its cached copy)."""
    from tracking.store import connect

    store = f"sqlite:///{folder / 'mlflow.db'}"
    connect(store)  # an existing store, as after a user's first run
    print(f"end to end, whole processes (best of {repeats}; the project's token cache filled by its first run):")
    print(f"{'run':<22}{'plain s':>9}{'project s':>11}{'speed-up':>10}")
    for mode, epochs in END_TO_END:
        config_file = write_config_file(
            resolve_config(mode, None, {"num_epochs": epochs, **shrink}), folder / f"{mode}.yaml"
        )
        plain = [sys.executable, "-m", "benchmarks.plain_run", "--config", str(config_file), "--data", str(text),
                 "--out", str(folder / "plain")]  # fmt: skip
        project = [sys.executable, str(ROOT / "runner.py"), "single", "--mode", mode, "--config", str(config_file),
                   "--data", str(text), "--device", device, "--tracking-uri", store]  # fmt: skip
        times: dict[str, list[float]] = {"plain": [], "project": []}
        for _ in range(repeats):
            times["plain"].append(command_seconds(plain, ROOT))
            times["project"].append(command_seconds(project, folder))
        best_plain, best_project = min(times["plain"]), min(times["project"])
        label = f"{mode}, {epochs} epoch{'s' if epochs > 1 else ''}"
        print(f"{label:<22}{best_plain:>9.1f}{best_project:>11.1f}{best_plain / best_project:>9.2f}x")


if __name__ == "__main__":
    main()
