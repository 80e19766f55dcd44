"""How initialisation, forward multipliers and AdamW's settings scale with a model's shape: every rule here.

Under the standard parametrization (GPT-2's: PyTorch's layers, initialised as GPT-2 was) the best learning
rate shrinks as a model widens or deepens, so a sweep on a small model says little about a big one. Under
``mup`` the best learning rate holds: µP for width (Tensor Programs V, Yang et al. 2022, Table 3, in the
equivalent form with an output multiplier that microsoft/mup's MuReadout and EleutherAI's nanoGPT-mup use),
CompleteP for depth (Dey et al. 2025, alpha = 1). Both are written relative to a base shape
(``base_emb_dim``, ``base_n_heads``, ``base_n_layers``): with m = emb_dim / base_emb_dim, h = head size /
base head size and r = n_layers / base_n_layers,

| what                                              | standard       | mup                                  |
| ------------------------------------------------- | -------------- | ------------------------------------ |
| token and position embeddings: init std           | s              | s                                    |
| hidden matrices (qkv, MLP in): init std           | s              | s / √m                               |
| residual outputs (attention out, MLP out): init   | s / √(2 L)     | s / √(2 L_base) / √m                 |
| output head: init std                             | s              | s                                    |
| attention scores                                  | q·k / √d_head  | q·k / √d_head / √h = q·k √d_base / d_head |
| each residual branch's output                     | x 1            | x 1 / r                              |
| logits                                            | x 1            | x 1 / m                              |
| Adam learning rate: hidden matrices               | η              | η / m                                |
| Adam learning rate: everything else               | η              | η                                    |
| weight decay: hidden matrices                     | λ              | λ · m                                |
| weight decay: embeddings, head                    | λ              | λ                                    |
| weight decay: LayerNorm gains, biases             | 0              | 0                                    |
| Adam ε: hidden matrices                           | ε              | ε / (m r)                            |

s = 0.02 (GPT-2's) and L = n_layers. At the base shape m = h = r = 1 and every row reads the same in both
columns, so ``mup`` computes exactly what ``standard`` does. The hidden matrices' weight decay grows with m so that the
decay per step (learning rate times weight decay, in AdamW) stays what it was at the base (Wang and Aitchison
2024); their ε shrinks as their gradients do, so that it stays as small beside them as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpt.config import ModelConfig

INIT_STD = 0.02  # GPT-2's s


@dataclass(frozen=True)
class ShapeScaling:
    """The multipliers of one model shape; all 1 under ``standard``. Built by ``for_model``."""

    width: float = 1.0  # m
    head: float = 1.0  # h
    depth: float = 1.0  # r
    init_depth: int = 1  # the L of the residual outputs' init: n_layers, or base_n_layers under mup

    @classmethod
    def for_model(cls, config: ModelConfig) -> ShapeScaling:
        if config.parametrization == "standard":
            return cls(init_depth=config.n_layers)
        head_dim, base_head_dim = config.emb_dim / config.n_heads, config.base_emb_dim / config.base_n_heads
        return cls(
            width=config.emb_dim / config.base_emb_dim,
            head=head_dim / base_head_dim,
            depth=config.n_layers / config.base_n_layers,
            init_depth=config.base_n_layers,
        )

    @property
    def hidden_init_std(self) -> float:
        return INIT_STD / math.sqrt(self.width)

    @property
    def residual_init_std(self) -> float:
        return self.hidden_init_std / math.sqrt(2 * self.init_depth)

    def attention_scale(self, head_dim: int) -> float | None:
        """The factor on q·k; None for PyTorch's own 1/√d_head, which it is at h = 1."""
        return None if self.head == 1 else 1 / math.sqrt(head_dim) / math.sqrt(self.head)

    @property
    def residual_branch(self) -> float:
        return 1 / self.depth

    @property
    def logits(self) -> float:
        return 1 / self.width

    @property
    def hidden_learning_rate(self) -> float:
        return 1 / self.width

    @property
    def hidden_weight_decay(self) -> float:
        return self.width

    @property
    def hidden_eps(self) -> float:
        return 1 / (self.width * self.depth)

    def adamw_groups(
        self, hidden: list, other_matrices: list, vectors: list, weight_decay: float, eps: float = 1e-8
    ) -> list[dict]:
        """AdamW's parameter groups: the hidden matrices, the other matrices (embeddings and head), and the
        vectors (LayerNorm gains, biases), which are not decayed. Each group's ``lr_scale`` is what the
        training step multiplies the scheduled learning rate by, so the learning rate a run logs and a sweep
        searches is the base shape's."""
        return [
            {
                "name": "hidden",
                "params": hidden,
                "lr_scale": self.hidden_learning_rate,
                "weight_decay": weight_decay * self.hidden_weight_decay,
                "eps": eps * self.hidden_eps,
            },
            {"name": "embeddings and head", "params": other_matrices, "lr_scale": 1.0, "weight_decay": weight_decay},
            {"name": "gains and biases", "params": vectors, "lr_scale": 1.0, "weight_decay": 0.0},
        ]
