import pytest
import torch

from gpt.config import PRESETS, ModelConfig
from gpt.loss import head_cross_entropy
from gpt.model import GPTModel, count_parameters


def test_quick_model_has_the_reference_parameter_count():
    assert count_parameters(GPTModel(PRESETS["quick"].model)) == 6_540_800


def test_124m_config_has_the_reference_parameter_count():
    assert count_parameters(GPTModel(ModelConfig(context_length=256))) == 162_419_712


def test_qkv_bias_adds_three_bias_vectors_per_layer():
    config = ModelConfig(vocab_size=100, context_length=8, emb_dim=16, n_heads=2, n_layers=3)
    with_bias = GPTModel(ModelConfig(**{**config.to_dict(), "qkv_bias": True}))
    assert count_parameters(with_bias) - count_parameters(GPTModel(config)) == 3 * 3 * 16


def test_attention_is_causal():
    torch.manual_seed(0)
    model = GPTModel(ModelConfig(vocab_size=50, context_length=8, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0))
    model.eval()
    ids = torch.randint(0, 50, (1, 8))
    changed = ids.clone()
    changed[0, 5:] = (changed[0, 5:] + 1) % 50
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert before.shape == (1, 8, 50)
    assert torch.allclose(before[0, :5], after[0, :5], atol=1e-6)
    assert not torch.allclose(before[0, 5:], after[0, 5:])


def test_too_long_input_is_refused():
    model = GPTModel(ModelConfig(vocab_size=50, context_length=4, emb_dim=8, n_heads=2, n_layers=1))
    with pytest.raises(ValueError, match="exceeds context_length 4"):
        model(torch.zeros(1, 5, dtype=torch.long))


@pytest.mark.parametrize("grad", [True, False])
def test_chunked_head_cross_entropy_equals_the_full_logits_one(monkeypatch, grad):
    monkeypatch.setattr("gpt.loss.CPU_CHUNK_ELEMENTS", 7 * 300)  # chunks of 16 rows (the width): the last one short
    torch.manual_seed(0)
    hidden = torch.randn(50, 16, requires_grad=grad)
    weight = torch.randn(300, 16, requires_grad=grad)
    targets = torch.randint(0, 300, (50,))
    with torch.set_grad_enabled(grad):
        chunked = head_cross_entropy(hidden, weight, targets)
    expected = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    assert chunked.item() == pytest.approx(expected.item(), rel=1e-6)
    if grad:
        chunked_grads = torch.autograd.grad(2 * chunked, (hidden, weight))
        expected_grads = torch.autograd.grad(2 * expected, (hidden, weight))
        for ours, theirs in zip(chunked_grads, expected_grads, strict=True):
            assert torch.allclose(ours, theirs, atol=1e-6)
