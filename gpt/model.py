"""GPT-2 in one readable module: embeddings, pre-LayerNorm transformer blocks, an untied head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gpt.config import ModelConfig
from gpt.loss import head_cross_entropy


class MultiHeadAttention(nn.Module):
    """Causal self-attention; PyTorch's fused kernel does the masking and softmax."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.drop_rate = config.drop_rate
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=config.qkv_bias)  # one matmul, not three
        self.out_proj = nn.Linear(config.emb_dim, config.emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, emb_dim = x.shape  # (B, T, C)
        qkv = self.qkv(x).view(batch, tokens, 3, self.n_heads, -1)  # (B, T, 3, nh, hs)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        context = F.scaled_dot_product_attention(
            queries, keys, values, dropout_p=self.drop_rate if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        context = context.transpose(1, 2).reshape(batch, tokens, emb_dim)  # (B, T, nh, hs) -> (B, T, C)
        return self.out_proj(context)


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(config.emb_dim, 4 * config.emb_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * config.emb_dim, config.emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm: each sublayer reads a normalised copy and adds its (dropped-out) output back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim)
        self.att = MultiHeadAttention(config)
        self.norm2 = nn.LayerNorm(config.emb_dim)
        self.ff = FeedForward(config)
        self.drop_resid = nn.Dropout(config.drop_rate)  # on both residual branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        x = x + self.drop_resid(self.att(self.norm1(x)))
        return x + self.drop_resid(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    """GPT-2: token and position embeddings, ``n_layers`` pre-norm transformer blocks, a final LayerNorm and
    an untied output head over the vocabulary. ``forward`` returns the logits, or with ``targets`` the
    mean cross-entropy (``score_last``: over the last positions of each window only)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = nn.Dropout(config.drop_rate)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(config) for _ in range(config.n_layers)])
        self.final_norm = nn.LayerNorm(config.emb_dim)
        self.out_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)

    def hidden_states(self, in_idx: torch.Tensor) -> torch.Tensor:
        """Token ids (batch, tokens) to the final normalised states the head reads (batch, tokens, emb)."""
        tokens = in_idx.shape[1]
        if tokens > self.config.context_length:
            raise ValueError(f"sequence of {tokens} tokens exceeds context_length {self.config.context_length}")
        positions = torch.arange(tokens, device=in_idx.device)  # (T,)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))  # (B, T, C)
        return self.final_norm(self.trf_blocks(x))  # (B, T, C)

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
