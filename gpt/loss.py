"""Cross-entropy of the output head, a chunk of tokens at a time: the full logits never exist.

For a small model the head dominates: the quick preset's 64-wide embedding meets 50,257
vocabulary rows, so one batch's fp32 logits (B*T by 50,257, 103 MB) and their softmax and
gradient cost more memory traffic than every transformer block together. Here each chunk's
logits are made, turned into its loss and, when training, at once into the gradients of the
hidden states and the head's weight, then dropped. The loss is exactly the mean cross-entropy
of ``F.cross_entropy(hidden @ weight.T, targets)``, computed in another order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Logit elements per chunk on a CPU (~16 MB in fp32), but never fewer rows than the embedding is
# wide, so that a wide model's head matmuls stay compute-bound (docs/performance.md, "Training speed").
CPU_CHUNK_ELEMENTS = 4 * 1024 * 1024


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype autocast would run a matmul in here (fp32 outside autocast)."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.float32


def chunk_loss_and_logit_grad(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, scale: float, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Summed cross-entropy of one chunk (c, C) against the head (V, C), and ``scale`` times
    d(loss)/d(logits) = softmax - one_hot, made in place of the logits, when ``with_grad``."""
    logits = (hidden @ weight.T).float()  # (c, V)
    log_norm = torch.logsumexp(logits, dim=-1)  # (c,)
    loss = (log_norm - logits.gather(1, targets[:, None]).squeeze(1)).sum()
    if not with_grad:
        return loss, None
    grad = logits.sub_(log_norm[:, None]).exp_()  # softmax, in the logits' memory
    grad[torch.arange(len(targets), device=targets.device), targets] -= 1
    return loss, grad.mul_(scale).to(hidden.dtype)


class _HeadCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and both gradients chunk by chunk; backward only scales them."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
        dtype = compute_dtype(hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            weight_c = weight.to(dtype)  # (V, C)
            grad_hidden = torch.empty_like(hidden)  # (N, C)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # (V, C)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, len(hidden), rows):
                chunk = hidden[start : start + rows].to(dtype)  # (c, C)
                loss, grad_logits = chunk_loss_and_logit_grad(
                    chunk, weight_c, targets[start : start + rows], 1 / len(hidden), with_grad=True
                )  # (), (c, V)
                total += loss
                grad_hidden[start : start + rows] = grad_logits @ weight_c  # (c, C)
                grad_weight += (grad_logits.T @ chunk).float()  # (V, C)
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return total / len(hidden)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, None, None


def head_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the logits ``hidden @ weight.T``: (N, C), (V, C), (N,) -> ().

    Chunked on a CPU. A GPU keeps one big matmul and PyTorch's fused cross-entropy, which
    were not measured against the chunks there.
    """
    if hidden.device.type != "cpu":
        return F.cross_entropy(F.linear(hidden, weight).float(), targets)
    rows = max(1, CPU_CHUNK_ELEMENTS // weight.shape[0], weight.shape[1])
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _HeadCrossEntropy.apply(hidden, weight, targets, rows)
    dtype = compute_dtype(hidden.device)
    weight_c = weight.to(dtype)
    total = sum(
        chunk_loss_and_logit_grad(hidden[s : s + rows].to(dtype), weight_c, targets[s : s + rows], 1.0, False)[0]
        for s in range(0, len(hidden), rows)
    )
    return total / len(hidden)
