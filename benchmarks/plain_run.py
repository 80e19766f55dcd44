"""The end-to-end baseline: one whole training run written the straightforward way.

    python -m benchmarks.plain_run --config run.yaml --data ../shared/data/the-verdict.txt --out DIR

What a from-scratch script does (the book's chapter 5 loop): read and encode the whole
text, cut windows in a Python loop, train ``benchmarks.plain_gpt.PlainGPT`` in fp32 with a
``.item()`` every step, evaluate every ``eval_freq`` steps and at the last (the train loss
the mean of the steps since, the val loss on every validation window), print a greedy
sample after each epoch, then save model and optimizer with ``torch.save`` and draw the
loss plot with pyplot. Same config, data, batches and evaluations as ``runner.py single
--config run.yaml``; ``benchmarks.train_speed --end-to-end`` times the two as whole processes.
"""

from __future__ import annotations

from pathlib import Path

import click
import matplotlib
import tiktoken
import torch
from torch import nn

from benchmarks.plain_gpt import PlainGPT, PlainWindows, plain_step
from gpt.config import TrainingConfig, read_config_file
from gpt.data import TRAIN_FRACTION


def evaluate(model: PlainGPT, loader: torch.utils.data.DataLoader) -> float:
    model.eval()
    losses = []
    with torch.no_grad():
        for inputs, targets in loader:
            logits = model(inputs)
            losses.append(nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def greedy_sample(model: PlainGPT, tokenizer: tiktoken.Encoding, prompt: str, context: int, tokens: int = 50) -> str:
    model.eval()
    ids = torch.tensor(tokenizer.encode(prompt)).unsqueeze(0)
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(ids[:, -context:])
            ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    model.train()
    return tokenizer.decode(ids[0].tolist())


@click.command()
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def main(config_file: str, data: str, out: Path) -> None:
    config = TrainingConfig.from_dict(read_config_file(config_file))
    tokenizer = tiktoken.get_encoding("gpt2")
    ids = tokenizer.encode(Path(data).read_text(encoding="utf-8"), allowed_special={"<|endoftext|>"})
    split = int(TRAIN_FRACTION * len(ids))
    train_set = PlainWindows(ids[:split], config.max_length, config.stride)
    val_set = PlainWindows(ids[split:], config.max_length, config.stride)
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=config.batch_size, shuffle=True, drop_last=True, generator=generator
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=config.batch_size)
    torch.manual_seed(config.seed)
    model = PlainGPT(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    total = config.training_steps(len(train_loader))
    step, train_losses, val_losses, since_eval = -1, [], [], []
    for epoch in range(1, config.num_epochs + 1):
        for inputs, targets in train_loader:
            since_eval.append(plain_step(model, optimizer, inputs, targets))
            step += 1
            if step % config.eval_freq == 0 or step == total - 1:
                train_losses.append(sum(since_eval) / len(since_eval))
                val_losses.append(evaluate(model, val_loader))
                since_eval = []
                print(f"Ep {epoch} (Step {step:06d}): Train loss {train_losses[-1]:.3f}, Val loss {val_losses[-1]:.3f}")
        sample = greedy_sample(model, tokenizer, config.start_context, config.model.context_length)
        print(f"Sample after epoch {epoch}: {sample!r}")

    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, out / "model_and_optimizer.pth")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # as a script would, once the backend is set

    plt.plot(train_losses, label="train")
    plt.plot(val_losses, label="val")
    plt.legend()
    plt.savefig(out / "loss.png")


if __name__ == "__main__":
    main()
