"""One call that readies everything a training run needs: device, data loaders, model and optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tiktoken
import torch
from torch.utils.data import DataLoader

from gpt.config import TrainingConfig
from gpt.data import TokenizedText, create_dataloaders, gpt2_encoding, load_source, tokenize
from gpt.device import choose_device, resolve_precision
from gpt.errors import ConfigError
from gpt.model import GPTModel


@dataclass
class Environment:
    config: TrainingConfig
    device: torch.device
    device_reason: str
    precision: str
    tokenizer: tiktoken.Encoding
    tokens: TokenizedText
    model: GPTModel
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader
    val_loader: DataLoader


def load_tokens(
    data: str | None = None, tokenizer: tiktoken.Encoding | None = None, cache_dir: Path | None = None
) -> tuple[TokenizedText, tiktoken.Encoding]:
    """Read and tokenize the training text; a sweep calls this once and shares the result."""
    tokenizer = tokenizer or gpt2_encoding()
    return tokenize(load_source(data, cache_dir), tokenizer, cache_dir), tokenizer


def prepare_environment(
    config: TrainingConfig,
    data: str | None = None,
    device: str = "auto",
    tokenizer: tiktoken.Encoding | None = None,
    tokens: TokenizedText | None = None,
    cache_dir: Path | None = None,
) -> Environment:
    """Device, data loaders, a freshly seeded model and its AdamW optimizer."""
    torch_device, reason = choose_device(device)
    precision = resolve_precision(config.precision, torch_device)
    if tokens is None or tokenizer is None:
        tokens, tokenizer = load_tokens(data, tokenizer, cache_dir)
    if config.model.vocab_size < tokenizer.n_vocab:
        raise ConfigError(
            f"vocab_size ({config.model.vocab_size}) is smaller than the tokenizer's vocabulary ({tokenizer.n_vocab})"
        )
    train_loader, val_loader = create_dataloaders(
        tokens, config.max_length, config.stride, config.batch_size, config.num_workers, config.seed
    )
    torch.manual_seed(config.seed)
    model = GPTModel(config.model).to(torch_device)
    on_cuda = torch_device.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=on_cuda or None
    )
    if config.compile:
        model.compile()  # in place, so state_dict keys and checkpoints stay the same
    return Environment(
        config, torch_device, reason, precision, tokenizer, tokens, model, optimizer, train_loader, val_loader
    )
