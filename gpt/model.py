"""GPT-2 in one readable module: embeddings, pre-LayerNorm transformer blocks, an untied head.

Its weights are initialised as GPT-2's were, and, under ``parametrization: mup``, scaled with the model's
shape; every multiplier comes from ``gpt.parametrization.ShapeScaling``, where the table of them is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt.config import ModelConfig
from gpt.loss import head_cross_entropy
from gpt.parametrization import INIT_STD, ShapeScaling


def init_linear(layer: nn.Linear, std: float) -> None:
    nn.init.normal_(layer.weight, mean=0.0, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class MultiHeadAttention(nn.Module):
    """Causal self-attention; PyTorch's fused kernel does the masking and softmax."""

    def __init__(self, config: ModelConfig, scaling: ShapeScaling) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.drop_rate = config.drop_rate
        self.scale = scaling.attention_scale(config.emb_dim // config.n_heads)  # None: 1/sqrt(head size)
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)  # one matmul, not three
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)
        init_linear(self.qkv, scaling.hidden_init_std)
        init_linear(self.out_proj, scaling.residual_init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, emb_dim = x.shape  # (B, T, C)
        qkv = self.qkv(x).view(batch, tokens, 3, self.n_heads, -1)  # (B, T, 3, nh, hs)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        context = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.drop_rate if self.training else 0.0, is_causal=True, scale=self.scale
        )  # (B, nh, T, hs)
        context = context.transpose(1, 2).reshape(batch, tokens, emb_dim)  # (B, T, nh, hs) -> (B, T, C)
        return self.out_proj(context)


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig, scaling: ShapeScaling) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.emb_dim, 4 * config.emb_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * config.emb_dim, config.emb_dim),
        )
        init_linear(self.layers[0], scaling.hidden_init_std)
        init_linear(self.layers[2], scaling.residual_init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm: each sublayer reads a normalised copy and adds its (dropped-out) output back,
    scaled by ``residual_branch`` (1 but under mup in a model deeper or shallower than its base)."""

    def __init__(self, config: ModelConfig, scaling: ShapeScaling) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim)
        self.att = MultiHeadAttention(config, scaling)
        self.norm2 = nn.LayerNorm(config.emb_dim)
        self.ff = FeedForward(config, scaling)
        self.drop_resid = nn.Dropout(config.drop_rate)  # on both residual branches
        self.residual_branch = scaling.residual_branch

    def branch(self, output: torch.Tensor) -> torch.Tensor:
        output = self.drop_resid(output)
        return output if self.residual_branch == 1 else output * self.residual_branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        x = x + self.branch(self.att(self.norm1(x)))
        return x + self.branch(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    """GPT-2: token and position embeddings, ``n_layers`` pre-norm transformer blocks, a final LayerNorm and
    an untied output head over the vocabulary. ``forward`` returns the logits, or with ``targets`` the
    mean cross-entropy (``score_last``: over the last positions of each window only)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        scaling = ShapeScaling.for_model(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(config, scaling) for _ in range(config.n_layers)])
        self.final_norm = nn.LayerNorm(config.emb_dim)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        for weight in (self.tok_emb.weight, self.pos_emb.weight, self.out_head.weight):
            nn.init.normal_(weight, mean=0.0, std=INIT_STD)  # PyTorch would draw the embeddings from N(0, 1)
        self.scaling = scaling
        self.logit_scale = scaling.logits

    def hidden_states(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, tokens) to the final normalised states the head reads (batch, tokens, emb),
        times the logits' multiplier (1 but under mup in a model wider or narrower than its base)."""
        tokens = in_idx.shape[1]
        if tokens > self.config.context_length:
            raise ValueError(f"sequence of {tokens} tokens exceeds context_length {self.config.context_length}")
        positions = torch.arange(tokens, device=in_idx.device)  # (T,)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))  # (B, T, C)
        x = self.final_norm(self.trf_blocks(x))  # (B, T, C)
        return x if self.logit_scale == 1 else x * self.logit_scale

    def adamw_groups(self, weight_decay: float) -> list[dict]:
        """AdamW's parameter groups with their learning-rate scales (``ShapeScaling.adamw_groups``): the
        blocks' linear weights are the hidden matrices; embeddings and head the other matrices."""
        hidden = [p for block in self.trf_blocks for p in block.parameters() if p.dim() >= 2]
        hidden_ids = {id(p) for p in hidden}
        matrices = [p for p in self.parameters() if p.dim() >= 2 and id(p) not in hidden_ids]
        vectors = [p for p in self.parameters() if p.dim() < 2]
        return self.scaling.adamw_groups(hidden, matrices, vectors, weight_decay)

    def next_token_logits(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Logits of the token after each sequence (batch, vocab): the head runs at the last position only."""
        return self.out_head(self.hidden_states(in_idx)[:, -1])  # (B, C) -> (B, vocab)

    def forward(
        self, in_idx: torch.Tensor, targets: torch.Tensor | None = None, score_last: int | None = None
    ) -> torch.Tensor:
        """Token ids (batch, tokens) to next-token logits (batch, tokens, vocab); given the
        ``targets`` (batch, tokens), to their mean cross-entropy instead, without making all the logits.

        With ``score_last`` only the targets of each window's last positions count: a window laid
        over the end of a validation block whose first targets were scored by the window before.
        """
        x = self.hidden_states(in_idx)  # (B, T, C)
        if targets is None:
            return self.out_head(x)  # (B, T, vocab)
        if score_last is not None:
            x, targets = x[:, -score_last:], targets[:, -score_last:]  # (B, S, C), (B, S)
        return head_cross_entropy(x.flatten(0, 1), self.out_head.weight, targets.flatten())  # (B*T, C) -> ()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
