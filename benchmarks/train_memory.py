"""Does ``gpt.cost.training_memory_bytes`` tell the memory a training step needs? Its estimate beside the peak
PyTorch's profiler measures, for shapes from the quick model up.

    python -m benchmarks.train_memory

For each shape: a model and AdamW as a run builds them, one step to create the optimizer's state, then one
profiled step (forward, backward, AdamW, at the shape's batch size and context, fp32 on a CPU, one thread).
The peak is the largest sum of live tensors on the profiler's memory timeline. Printed: the estimate, the
peak, and their ratio. The profiler's timeline export is deprecated in PyTorch 2.13 for CUDA's memory
snapshots, which do not cover a CPU; it is the one public measure of a CPU step's tensors there is.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import click
import torch
from torch.profiler import ProfilerActivity, profile

from gpt.config import ModelConfig, TrainingConfig
from gpt.cost import training_memory_bytes
from gpt.model import GPTModel

# (emb_dim, n_layers, n_heads, batch_size, max_length, drop_rate): the quick model at two batches, with and
# without dropout (the attention's unfused path), then wider and deeper shapes where activations dominate.
SHAPES = (
    (64, 2, 4, 8, 64, 0.1),
    (64, 2, 4, 16, 128, 0.1),
    (64, 2, 4, 16, 128, 0.0),
    (128, 4, 4, 16, 256, 0.1),
    (128, 4, 4, 16, 256, 0.0),
    (256, 4, 8, 8, 256, 0.1),
)


def shape_config(emb_dim: int, n_layers: int, n_heads: int, batch: int, context: int, drop: float) -> TrainingConfig:
    model = ModelConfig(emb_dim=emb_dim, n_layers=n_layers, n_heads=n_heads, context_length=context, drop_rate=drop)
    return TrainingConfig(model=model, batch_size=batch, max_length=context, precision="fp32")


def measured_peak_bytes(config: TrainingConfig) -> int:
    """The most bytes of tensors alive at once during one fp32 training step of ``config`` on a CPU, the
    optimizer's state already made (a step before the measured one)."""
    torch.manual_seed(0)
    model = GPTModel(config.model)
    optimizer = torch.optim.AdamW(model.adamw_groups(config.weight_decay), lr=config.learning_rate)
    batch = torch.zeros((config.batch_size, config.max_length), dtype=torch.long)  # (B, T)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(batch, batch).backward()
        optimizer.step()

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of CUDA-only memory snapshots
        timeline = Path(folder) / "timeline.raw.json"
        prof.export_memory_timeline(str(timeline), device="cpu")
        _, sizes = json.loads(timeline.read_text())  # per event: bytes live in each category
    return max(sum(categories) for categories in sizes)


@click.command()
def main() -> None:
    torch.set_num_threads(1)
    click.echo(f"{'emb':>4} {'layers':>6} {'heads':>5} {'batch':>5} {'ctx':>4} {'drop':>4}"
               f" {'estimate MB':>12} {'measured MB':>12} {'ratio':>6}")  # fmt: skip
    for shape in SHAPES:
        config = shape_config(*shape)
        estimate, measured = training_memory_bytes(config), measured_peak_bytes(config)
        click.echo(
            "{:>4} {:>6} {:>5} {:>5} {:>4} {:>4}".format(*shape)
            + f" {estimate / 1e6:>12.1f} {measured / 1e6:>12.1f} {estimate / measured:>6.3f}"
        )


if __name__ == "__main__":
    main()
