"""What a model and its training cost, known from the config before anything is built: parameters, and
the arithmetic of a training run.

A sweep plans with these (a time budget estimates a trial's seconds from its arithmetic) without building
the model; ``tests/test_cost.py`` checks the count against a built ``GPTModel``.
"""

from __future__ import annotations

from typing import NamedTuple

from gpt.config import ModelConfig, TrainingConfig


def block_parameters(model: ModelConfig) -> int:
    """One transformer block: the fused query/key/value projection (3d², a 3d bias with ``qkv_bias``), the
    output projection (d² + d), the feed-forward network (8d² + 5d) and two LayerNorms (4d)."""
    d = model.emb_dim
    return 12 * d * d + 10 * d + (3 * d if model.qkv_bias else 0)


def parameter_count(model: ModelConfig, embeddings: bool = True) -> int:
    """All parameters; ``embeddings=False`` leaves out the token and position tables (the head stays: it
    is a matmul every token pays for, while an embedding is a lookup)."""
    d = model.emb_dim
    tables = (model.vocab_size + model.context_length) * d if embeddings else 0
    return tables + model.n_layers * block_parameters(model) + 2 * d + model.vocab_size * d


def training_flops_per_token(model: ModelConfig, context: int) -> float:
    """Forward and backward for one token in windows of ``context``: 6 per matmul weight, plus attention's
    two context-long matmuls in each layer (12·L·T·d), as in the Chinchilla and nanoGPT counts."""
    return 6 * parameter_count(model, embeddings=False) + 12 * model.n_layers * context * model.emb_dim


def eval_flops_per_token(model: ModelConfig, context: int) -> float:
    """A forward pass alone: a third of a training step's arithmetic."""
    return training_flops_per_token(model, context) / 3


class RunFlops(NamedTuple):
    """A run's arithmetic: its optimizer steps, and its reads of the validation tokens."""

    training: float
    evaluation: float

    @property
    def total(self) -> float:
        return self.training + self.evaluation


def run_flops(config: TrainingConfig, total_steps: int, evaluations: int, val_tokens: int) -> RunFlops:
    """A whole run: ``total_steps`` optimizer steps, ``evaluations`` reads of the validation subset during
    training and the final read of the whole validation span, on a validation split of ``val_tokens``."""
    context = config.max_length
    trained = total_steps * config.batch_size * context * training_flops_per_token(config.model, context)
    read_tokens = evaluations * min(config.eval_tokens, val_tokens) + min(config.final_eval_tokens, val_tokens)
    return RunFlops(trained, read_tokens * eval_flops_per_token(config.model, context))
