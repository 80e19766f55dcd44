"""The coordinate check: is a parametrization wired right? (microsoft/mup's test of a µP implementation.)

    python -m benchmarks.coord_check --widths 64,128,256,512

Models of growing width (2 layers, 4 heads, so the head size grows too) train a few AdamW steps on one
fixed batch of random tokens. For each layer type it prints the mean absolute value of its output
coordinates after those steps, and how far they moved from the initial ones, at each width, and the
growth from the narrowest to the widest. Under ``mup`` both stay flat across width; under ``standard``
the updates' effect grows with width (Adam moves every weight by about the learning rate, and a wider
layer sums more of those moves), which is why its best learning rate shrinks as a model widens.
"""

from __future__ import annotations

from dataclasses import dataclass

import click
import torch
from torch import nn

from benchmarks.options import positive_numbers
from gpt.config import PARAMETRIZATIONS, ModelConfig
from gpt.model import GPTModel

LAYER_TYPES = ("embeddings", "attention scores", "attention", "mlp", "residual", "logits")
VOCAB, CONTEXT, BATCH, HEADS = 512, 32, 8, 4


@dataclass(frozen=True)
class Coordinates:
    """One layer type at one width: the mean |coordinate| of its output after the steps, and the mean
    |change| of its output coordinates from initialisation."""

    size: float
    change: float


def layer_outputs(model: GPTModel, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each layer type's output on ``ids``, the blocks' concatenated: embeddings (B, T, C), the scaled
    attention scores before the softmax (B, nh, T, T), the attention and MLP branches (before the residual
    add), the residual stream after each block, the logits (B, T, vocab)."""
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in LAYER_TYPES}

    def keep(name: str):
        return lambda _module, _inputs, output: outputs[name].append(output.detach().clone())

    def keep_scores(attention: nn.Module):
        def hook(_module, _inputs, qkv: torch.Tensor) -> None:
            batch, tokens, _ = qkv.shape
            queries, keys, _ = qkv.view(batch, tokens, 3, attention.n_heads, -1).permute(2, 0, 3, 1, 4)
            scale = attention.scale or queries.shape[-1] ** -0.5  # what scaled_dot_product_attention uses
            outputs["attention scores"].append((queries @ keys.transpose(-2, -1) * scale).detach())  # (B, nh, T, T)

        return hook

    hooks = [model.drop_emb.register_forward_hook(keep("embeddings"))]
    for block in model.trf_blocks:
        hooks += [
            block.att.qkv.register_forward_hook(keep_scores(block.att)),
            block.att.register_forward_hook(keep("attention")),
            block.ff.register_forward_hook(keep("mlp")),
            block.register_forward_hook(keep("residual")),
        ]
    with torch.no_grad():
        outputs["logits"].append(model.eval()(ids))
    model.train()
    for hook in hooks:
        hook.remove()
    return {name: torch.cat(values, dim=-1) for name, values in outputs.items()}


def check_width(
    parametrization: str, width: int, steps: int, learning_rate: float, seed: int
) -> dict[str, Coordinates]:
    """Train one model of ``width`` for ``steps`` AdamW steps on a fixed batch; measure each layer type."""
    config = ModelConfig(
        vocab_size=VOCAB, context_length=CONTEXT, emb_dim=width, n_heads=HEADS, n_layers=2, drop_rate=0.0,
        parametrization=parametrization, base_emb_dim=64, base_n_heads=HEADS, base_n_layers=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = GPTModel(config)
    ids = torch.randint(0, VOCAB, (BATCH, CONTEXT + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T) each
    optimizer = torch.optim.AdamW(model.adamw_groups(0.0), lr=learning_rate)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate * group["lr_scale"]
    before = layer_outputs(model, inputs)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(inputs, targets).backward()
        optimizer.step()
    after = layer_outputs(model, inputs)
    return {
        name: Coordinates(after[name].abs().mean().item(), (after[name] - before[name]).abs().mean().item())
        for name in LAYER_TYPES
    }


def coordinate_check(
    parametrization: str, widths: list[int], steps: int = 3, learning_rate: float = 1e-2, seeds: int = 2
) -> dict[int, dict[str, Coordinates]]:
    """``check_width`` at each width, averaged over ``seeds`` seeds."""
    table = {}
    for width in widths:
        runs = [check_width(parametrization, width, steps, learning_rate, seed) for seed in range(seeds)]
        table[width] = {
            name: Coordinates(sum(r[name].size for r in runs) / seeds, sum(r[name].change for r in runs) / seeds)
            for name in LAYER_TYPES
        }
    return table


def growth(table: dict[int, dict[str, Coordinates]], name: str, what: str) -> float:
    """The widest model's value over the narrowest's: 1 is flat."""
    narrowest, widest = table[min(table)][name], table[max(table)][name]
    return getattr(widest, what) / getattr(narrowest, what)


@click.command()
@click.option(
    "--widths",
    default="64,128,256,512",
    show_default=True,
    callback=positive_numbers(int, HEADS),
    help="Widths, 4 heads each.",
)
@click.option("--steps", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True)
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True)
def main(widths: list[int], steps: int, learning_rate: float, seeds: int) -> None:
    for parametrization in PARAMETRIZATIONS:
        table = coordinate_check(parametrization, widths, steps, learning_rate, seeds)
        print(f"{parametrization}: mean |coordinate| after {steps} steps at lr {learning_rate:g} (change from init)")
        print("layer".ljust(18) + "".join(f"{w:>20}" for w in widths) + f"{'growth':>16}")
        for name in LAYER_TYPES:
            cells = "".join(f"{table[w][name].size:>9.3g} ({table[w][name].change:>7.3g})" for w in widths)
            print(f"{name:<18}{cells}  {growth(table, name, 'size'):>5.2f} ({growth(table, name, 'change'):>5.2f})")
        print()


if __name__ == "__main__":
    main()
