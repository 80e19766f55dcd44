"""The memory estimate a limit on ``train_memory_mb`` reads, against the peak of a real training step."""

import pytest

from benchmarks.train_memory import measured_peak_bytes, shape_config
from gpt.cost import training_memory_bytes


@pytest.mark.slow
@pytest.mark.parametrize("drop_rate", [0.0, 0.1])  # with dropout, attention runs unfused and keeps T x T scores
def test_the_training_memory_estimate_is_near_the_peak_a_step_measures(drop_rate):
    config = shape_config(emb_dim=64, n_layers=2, n_heads=4, batch=16, context=128, drop=drop_rate)
    ratio = training_memory_bytes(config) / measured_peak_bytes(config)
    assert 0.9 < ratio < 1.15, ratio
