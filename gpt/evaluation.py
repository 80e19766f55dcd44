"""The validation tokens every run is scored on, whatever its context length or batch size.

A run's validation loss is the mean cross-entropy over a fixed set of target tokens: blocks
of targets spread evenly over the validation split (the whole split when it is no longer than
the cap). A block is as long as the longest context compared (a sweep's longest, a single
run's own), and at least ``MIN_BLOCK_TOKENS``: many short blocks sample a varied text better
than a few long ones. Each context length cuts the same blocks into its own windows;
where a block is not a whole number of windows, the last window is laid flush with the
block's end and only its targets not yet scored count. So two runs with contexts 32 and 128
are scored on exactly the same tokens, each predicted with as much of its block before it as
the model's context holds, and the number compares models, not text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from gpt.errors import DataError

# Short blocks spread over the split sample it more evenly than long ones (docs/performance.md, "Does a
# sweep rank models or noise?").
MIN_BLOCK_TOKENS = 256
BATCH_TOKENS = 8192  # input tokens per evaluation batch


@dataclass(frozen=True)
class ValidationSpan:
    """Blocks of the validation split: ``starts[i]`` is a block's first token, ``targets[i]`` the
    number of tokens after it that are scored."""

    starts: np.ndarray
    targets: np.ndarray
    block: int

    @classmethod
    def of(cls, ids: np.ndarray, tokens: int, block: int = MIN_BLOCK_TOKENS) -> ValidationSpan:
        """Up to ``tokens`` targets (whole blocks of ``block``, at least one) of ``ids``: the split itself
        when it holds no more, else blocks spread evenly from its start to its end."""
        available = len(ids) - 1
        if available < 1:
            raise DataError(f"the validation split has {len(ids)} token(s); it needs at least 2")
        if available <= max(tokens, block):
            starts = np.arange(0, available, block)
            targets = np.minimum(block, available - starts)
            # A short last block joins the one before it, so its few targets keep their context.
            if len(starts) > 1 and targets[-1] < block:
                starts, targets = starts[:-1], np.append(targets[:-2], targets[-2] + targets[-1])
            return cls(starts, targets, block)
        blocks = max(1, tokens // block)
        starts = np.linspace(0, available - block, blocks).round().astype(np.int64)
        return cls(starts, np.full(blocks, block), block)

    @property
    def tokens(self) -> int:
        return int(self.targets.sum())

    def subset(self, tokens: int) -> ValidationSpan:
        """About ``tokens`` of this span's targets, in whole blocks spread evenly over it (all of it if fewer)."""
        if tokens >= self.tokens:
            return self
        keep = np.unique(np.linspace(0, len(self.starts) - 1, max(1, tokens // self.block)).round().astype(np.int64))
        return ValidationSpan(self.starts[keep], self.targets[keep], self.block)


def block_length(longest_context: int) -> int:
    return max(MIN_BLOCK_TOKENS, longest_context)


@dataclass(frozen=True)
class Windows:
    """Windows of one length over a span, each scoring only its last ``scored`` targets."""

    length: int
    scored: int
    starts: np.ndarray


def windows_of(span: ValidationSpan, context_length: int) -> list[Windows]:
    """The span cut into windows of ``context_length`` (or its block's length, if shorter), grouped by
    shape so that each group goes through the model in batches."""
    groups: dict[tuple[int, int], list[int]] = {}
    for start, targets in zip(span.starts.tolist(), span.targets.tolist(), strict=True):
        length = min(context_length, targets)
        whole = targets // length
        groups.setdefault((length, length), []).extend(start + i * length for i in range(whole))
        rest = targets - whole * length
        if rest:  # flush with the block's end; its first targets were scored by the window before
            groups.setdefault((length, rest), []).append(start + targets - length)
    return [Windows(length, scored, np.asarray(starts)) for (length, scored), starts in groups.items()]


def window_batches(ids: np.ndarray, windows: Windows) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Inputs and targets (B, T) of ``windows``, ``BATCH_TOKENS`` input tokens at a time."""
    offsets = np.arange(windows.length + 1)
    per_batch = max(1, BATCH_TOKENS // windows.length)
    for first in range(0, len(windows.starts), per_batch):
        starts = windows.starts[first : first + per_batch, None]  # (B, 1)
        batch = torch.from_numpy(ids[starts + offsets].astype(np.int64))  # (B, T + 1)
        yield batch[:, :-1], batch[:, 1:]


@dataclass(frozen=True)
class ValidationSet:
    """One run's windows over the validation span: all of it for the final loss, and the fixed
    subset that each evaluation during training reads (the same windows when the span is small)."""

    final: list[Windows]
    final_tokens: int
    during: list[Windows]
    during_tokens: int

    @classmethod
    def build(
        cls, ids: np.ndarray, context_length: int, final_tokens: int, eval_tokens: int, longest_context: int = 0
    ) -> ValidationSet:
        """``longest_context``: of all runs to compare (0: this one's), which sets the block length."""
        span = ValidationSpan.of(ids, final_tokens, block_length(longest_context or context_length))
        subset = span.subset(eval_tokens)
        final, during = windows_of(span, context_length), windows_of(subset, context_length)
        return cls(final, span.tokens, during, subset.tokens)

    @property
    def subset_is_all(self) -> bool:
        return self.during_tokens == self.final_tokens
