import torch

from gpt.config import ModelConfig
from gpt.generation import generate, text_to_token_ids, token_ids_to_text
from gpt.model import GPTModel


def _model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(ModelConfig(vocab_size=257, context_length=16, emb_dim=32, n_heads=2, n_layers=1)).eval()


def test_greedy_is_deterministic_and_slides_its_context(tiny_tokenizer):
    model, start = _model(), text_to_token_ids("Hello", tiny_tokenizer)
    first = generate(model, start, max_new_tokens=30, context_size=16)
    assert first.shape == (1, 35)
    assert torch.equal(first, generate(model, start, max_new_tokens=30, context_size=16))
    assert token_ids_to_text(first, tiny_tokenizer).startswith("Hello")


def test_top_k_one_and_tiny_top_p_equal_greedy_even_when_sampling(tiny_tokenizer):
    model, start = _model(), text_to_token_ids("Hi", tiny_tokenizer)
    greedy = generate(model, start, 10, 16)
    assert torch.equal(generate(model, start, 10, 16, temperature=5.0, top_k=1), greedy)
    assert torch.equal(generate(model, start, 10, 16, temperature=5.0, top_p=1e-6), greedy)


def test_sampling_follows_its_generator(tiny_tokenizer):
    model, start = _model(), text_to_token_ids("Hi", tiny_tokenizer)

    def sample(seed):
        return generate(model, start, 20, 16, temperature=1.5, top_k=50, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(1), sample(1))
    assert not torch.equal(sample(1), sample(2))


def test_generation_stops_at_eos(tiny_tokenizer):
    model, start = _model(), text_to_token_ids("Hi", tiny_tokenizer)
    first_new = generate(model, start, 1, 16)[0, -1].item()
    assert generate(model, start, 10, 16, eos_id=first_new).shape == start.shape
