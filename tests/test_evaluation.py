"""The validation span: the same target tokens for every context length, each scored once."""

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpt.config import PRESETS
from gpt.environment import prepare_environment
from gpt.evaluation import MIN_BLOCK_TOKENS, ValidationSpan, windows_of
from gpt.training import validation_loss


def scored_targets(span: ValidationSpan, context_length: int) -> Counter:
    """Each target index the windows score (a window at ``start`` predicts ``start + 1 ..``), counted."""
    scored = Counter()
    for group in windows_of(span, context_length):
        for start in group.starts.tolist():
            scored.update(range(start + 1 + group.length - group.scored, start + 1 + group.length))
    return scored


@pytest.mark.parametrize("tokens", [3000, 100_000])  # blocks spread over a long split; the whole of a short one
def test_every_context_length_scores_the_same_targets_once(tokens):
    ids = np.arange(20_000)
    span = ValidationSpan.of(ids, tokens)
    expected = Counter(
        i
        for start, n in zip(span.starts.tolist(), span.targets.tolist(), strict=True)
        for i in range(start + 1, start + 1 + n)
    )
    assert sum(expected.values()) == span.tokens == min(tokens // MIN_BLOCK_TOKENS * MIN_BLOCK_TOKENS, len(ids) - 1)
    assert max(expected.values()) == 1  # blocks never overlap
    for context_length in (16, 32, 100, 128, 1000, 4096):
        assert scored_targets(span, context_length) == expected


def test_a_long_split_is_sampled_from_start_to_end_and_a_subset_keeps_whole_blocks():
    span = ValidationSpan.of(np.arange(1_000_000), 32 * MIN_BLOCK_TOKENS)
    assert len(span.starts) == 32 and span.starts[0] == 0 and span.starts[-1] == 1_000_000 - 1 - MIN_BLOCK_TOKENS
    subset = span.subset(4 * MIN_BLOCK_TOKENS)
    assert subset.tokens == 4 * MIN_BLOCK_TOKENS and set(subset.starts) <= set(span.starts)
    assert subset.starts[0] == span.starts[0] and subset.starts[-1] == span.starts[-1]
    assert span.subset(10**9) is span


def test_the_validation_loss_is_the_mean_over_exactly_the_scored_tokens(verdict, tiny_tokenizer):
    """Batched windows, tails scored by their last targets and the chunked head loss, against full logits
    and F.cross_entropy window by window; 48 does not divide a block, so the tails are exercised."""
    config = PRESETS["quick"].update(vocab_size=257, emb_dim=32, n_heads=2, n_layers=1, max_length=48)
    env = prepare_environment(config.update(final_eval_tokens=2048), str(verdict), "cpu", tokenizer=tiny_tokenizer)
    ids = torch.from_numpy(env.tokens.val_ids.astype(np.int64))
    windows = windows_of(ValidationSpan.of(env.tokens.val_ids, 2048), 48)
    assert any(group.scored < group.length for group in windows)
    env.model.eval()
    losses = []
    with torch.no_grad():
        for group in windows:
            for start in group.starts.tolist():
                logits = env.model(ids[start : start + group.length][None])[0]  # (T, vocab)
                targets = ids[start + 1 : start + 1 + group.length]  # (T,)
                losses += F.cross_entropy(logits, targets, reduction="none")[-group.scored :].tolist()
    assert len(losses) == env.validation.final_tokens == len(env.tokens.val_ids) - 1  # the whole split
    # fp32 sums in another order: batched windows against one target at a time (seen 4e-5 apart)
    assert validation_loss(env, env.validation.final) == pytest.approx(sum(losses) / len(losses), abs=2e-4)
