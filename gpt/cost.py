"""What a model and its training cost, known from the config before anything is built: parameters, the
memory a training step needs, and the arithmetic of a training run.

A sweep plans with these (a time budget estimates a trial's seconds from its arithmetic, a limit on memory
keeps a configuration from training) without building the model. ``tests/test_model.py`` checks the count
against a built ``GPTModel``, ``tests/test_cost.py`` the memory against a measured training step.
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


def training_memory_bytes(config: TrainingConfig) -> int:
    """The peak bytes of tensors one fp32 training step holds, at the config's batch size and context.

    - 16 bytes a parameter: the weights, their gradients and AdamW's two moments;
    - the activations autograd keeps for the backward pass, 17 values a token and layer for each of the
      ``emb_dim`` channels: the two LayerNorms' inputs and outputs (4), the query, key and value (3), the
      attention's output and its copy in channel order (2), the output projection's output (1), the residual
      stream after attention (1), the feed-forward network's 4d-wide hidden layer before and after GELU (8);
    - with dropout on, 3 values per head and pair of positions a layer (the scores, their softmax, its
      dropped-out copy): PyTorch's fused attention kernels on a CPU take no dropout, so it runs unfused;
    - about 3 vocabulary-by-width matrices at the head, whose buffers overlap the rest at the peak: the
      gradient of its weight, which ``gpt.loss`` makes in the forward pass, the temporary each chunk adds
      to it through, a chunk's logits, and the scaled copy of the gradient that backward returns.

    ``benchmarks/train_memory.py`` prints this beside the peak PyTorch's profiler measures: from 1% below
    to 8% above it for shapes from the quick model to 256 wide and 4 deep on PyTorch 2.13. It counts tensors, as
    ``torch.cuda.max_memory_allocated`` does; a CPU process's resident memory runs higher (the allocator keeps
    freed blocks, the libraries load their own). On a GPU it is not measured and misses both ways: the
    fused attention takes dropout (no T x T term), but the head makes the whole batch's logits (``gpt.loss``).
    Under bf16 autocast the activations shrink, and the weights' bf16 copies add 2 bytes a parameter.
    """
    model, batch, context = config.model, config.batch_size, config.max_length
    tokens, width = batch * context, model.emb_dim
    state = 16 * parameter_count(model)
    activations = model.n_layers * 17 * tokens * width
    if model.drop_rate > 0:
        activations += model.n_layers * 3 * batch * model.n_heads * context * context
    head = 3 * model.vocab_size * width
    return state + 4 * (activations + head)


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
