"""One call that readies everything a training run needs: device, data loaders, model and optimizer."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import tiktoken
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from gpt.config import TrainingConfig
from gpt.corpus import DEFAULT_TEXT_FIELD, load_corpus
from gpt.data import TokenizedText, gpt2_encoding, tokenize, training_loader
from gpt.device import choose_device, resolve_precision
from gpt.distributed import ProcessGroup
from gpt.errors import ConfigError
from gpt.evaluation import ValidationSet
from gpt.model import GPTModel


@dataclass(kw_only=True)
class TrainingSetup:
    """What one training run works with: its config, device and precision, tokenizer and tokens, the model
    and optimizer, the training batches and the validation set. ``prepare_environment`` builds it; every
    training, tracking and sweep function takes it whole."""

    config: TrainingConfig
    device: torch.device
    device_reason: str
    precision: str
    tokenizer: tiktoken.Encoding
    tokens: TokenizedText
    model: GPTModel
    optimizer: torch.optim.Optimizer
    train_loader: DataLoader
    validation: ValidationSet
    group: ProcessGroup | None = None  # set when several processes train this model
    train_model: nn.Module | None = None  # what training steps call: the model, or its DDP wrapper

    def __post_init__(self) -> None:
        self.train_model = self.train_model or self.model


class LoadedText(NamedTuple):
    """A corpus read and tokenized, with the tokenizer that did it."""

    tokens: TokenizedText
    tokenizer: tiktoken.Encoding


def load_tokens(
    data: str | Sequence[str] | None = None,
    tokenizer: tiktoken.Encoding | None = None,
    val_data: str | Sequence[str] | None = None,
    text_field: str = DEFAULT_TEXT_FIELD,
) -> LoadedText:
    """Read and tokenize the training corpus (and ``val_data``, a validation corpus of its own); a sweep
    calls this once and shares the result. Each is a file, folder, glob or URL, or several
    (``gpt.corpus.load_corpus``)."""
    tokenizer = tokenizer or gpt2_encoding()
    val_corpus = load_corpus(val_data, text_field) if val_data else None
    return LoadedText(tokenize(load_corpus(data, text_field), tokenizer, val_source=val_corpus), tokenizer)


def prepare_environment(
    config: TrainingConfig,
    data: str | Sequence[str] | None = None,
    device: str = "auto",
    tokenizer: tiktoken.Encoding | None = None,
    tokens: TokenizedText | None = None,
    group: ProcessGroup | None = None,
    val_data: str | Sequence[str] | None = None,
    text_field: str = DEFAULT_TEXT_FIELD,
) -> TrainingSetup:
    """Device, data loaders, a freshly seeded model and its AdamW optimizer.

    With ``group`` the model is wrapped in DistributedDataParallel for the training steps,
    on this process's GPU, and each process's dropout draws its own masks.
    """
    torch_device, reason = choose_device(device)
    if group is not None:
        group.check_batch_size(config.batch_size)
        if torch_device.type == "cuda":
            torch_device = torch.device("cuda", group.local_rank)
        reason += f"; process {group.rank} of {group.world_size}"
    precision = resolve_precision(config.precision, torch_device)
    if tokens is None or tokenizer is None:
        with group.main_first() if group else contextlib.nullcontext():  # tokenized once, not per process
            tokens, tokenizer = load_tokens(data, tokenizer, val_data, text_field)
    if config.model.vocab_size < tokenizer.n_vocab:
        raise ConfigError(
            f"vocab_size ({config.model.vocab_size}) is smaller than the tokenizer's vocabulary ({tokenizer.n_vocab})"
        )
    train_loader = training_loader(
        tokens, config.max_length, config.stride, config.batch_size, config.num_workers, config.seed
    )
    validation = ValidationSet.build(
        tokens.val_ids, config.max_length, config.final_eval_tokens, config.eval_tokens, config.eval_block
    )
    torch.manual_seed(config.seed)
    model = GPTModel(config.model).to(torch_device)
    on_cuda = torch_device.type == "cuda"
    # One fused kernel for all parameters on CUDA and CPUs, not PyTorch's default per-tensor loop
    # (docs/performance.md, `benchmarks.train_speed`).
    optimizer = torch.optim.AdamW(
        model.adamw_groups(config.weight_decay),  # weight decay on matrices only; mup's learning-rate scales
        lr=config.learning_rate,
        fused=torch_device.type in ("cuda", "cpu") or None,
    )
    if config.compile:
        model.compile()  # in place, so state_dict keys and checkpoints stay the same
    train_model = model
    if group is not None:
        train_model = DistributedDataParallel(model, device_ids=[torch_device.index] if on_cuda else None)
        torch.manual_seed(config.seed + group.rank)  # rank 0 draws as one process would; the others differ
    return TrainingSetup(
        config=config,
        device=torch_device,
        device_reason=reason,
        precision=precision,
        tokenizer=tokenizer,
        tokens=tokens,
        model=model,
        optimizer=optimizer,
        train_loader=train_loader,
        validation=validation,
        group=group,
        train_model=train_model,
    )
