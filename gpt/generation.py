"""Text generation: greedy, temperature, top-k and top-p (nucleus) sampling."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import tiktoken
import torch

from gpt.config import DEFAULT_TOP_K, DEFAULT_TOP_P, STRATEGIES
from gpt.errors import ConfigError
from gpt.model import GPTModel


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each next token; built by ``for_strategy``, which checks the values once."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    max_new_tokens: int = 50

    @classmethod
    def for_strategy(
        cls,
        strategy: str,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        max_new_tokens: int = 50,
    ) -> SamplingSettings:
        """greedy: the likeliest token; top-k and top-p sample with ``DEFAULT_TOP_K`` and ``DEFAULT_TOP_P`` at
        temperature 1 unless given."""
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
        if top_k is not None and strategy != "top-k":
            raise ConfigError(f"top_k applies to strategy top-k, not {strategy}")
        if top_p is not None and strategy != "top-p":
            raise ConfigError(f"top_p applies to strategy top-p, not {strategy}")
        if strategy == "greedy":
            if temperature not in (None, 0):
                raise ConfigError("temperature applies to strategies top-k and top-p; greedy takes no temperature")
            return cls(max_new_tokens=max_new_tokens)
        temperature = 1.0 if temperature is None else temperature
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0 when sampling (got {temperature})")
        if strategy == "top-k":
            top_k = DEFAULT_TOP_K if top_k is None else top_k
            if top_k < 1:
                raise ConfigError(f"top_k must be >= 1 (got {top_k})")
            return cls(temperature, top_k=top_k, max_new_tokens=max_new_tokens)
        top_p = DEFAULT_TOP_P if top_p is None else top_p
        if not 0 < top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] (got {top_p})")
        return cls(temperature, top_p=top_p, max_new_tokens=max_new_tokens)


def text_to_token_ids(text: str, tokenizer: tiktoken.Encoding) -> torch.Tensor:
    return torch.tensor(tokenizer.encode(text, allowed_special={"<|endoftext|>"})).unsqueeze(0)


def token_ids_to_text(token_ids: torch.Tensor, tokenizer: tiktoken.Encoding) -> str:
    return tokenizer.decode(token_ids.squeeze(0).tolist())


def _filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token once the tokens before it already cover top_p; the first always stays.
        drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    context_size: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx`` (batch, tokens) by up to ``max_new_tokens``; temperature 0 is greedy."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (got {temperature})")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (got {top_k})")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (got {top_p})")
    for _ in range(max_new_tokens):
        logits = model.next_token_logits(idx[:, -context_size:])  # (B, vocab)
        logits = _filter_logits(logits, top_k, top_p)
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)
        else:
            next_id = torch.argmax(logits, dim=-1, keepdim=True)
        if eos_id is not None and bool((next_id == eos_id).all()):
            break
        idx = torch.cat((idx, next_id), dim=1)
    return idx


def continue_text(
    model: GPTModel,
    tokenizer: tiktoken.Encoding,
    prompt: str,
    settings: SamplingSettings | None = None,
    seed: int | None = None,
) -> str:
    """The prompt and its continuation, stopping early at ``<|endoftext|>``."""
    if not prompt:
        raise ConfigError("prompt must not be empty")
    settings = settings or SamplingSettings()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    ids = generate(
        model.eval(),
        text_to_token_ids(prompt, tokenizer).to(device),
        settings.max_new_tokens,
        model.config.context_length,
        settings.temperature,
        settings.top_k,
        settings.top_p,
        eos_id=tokenizer.eot_token,
        generator=generator,
    )
    return token_ids_to_text(ids, tokenizer)


def ms_per_generated_token(model: GPTModel, context: int, tokens: int = 16, batch: int = 1) -> float:
    """Milliseconds per token of greedy generation with every window ``context`` tokens long, ``batch``
    sequences at once, on the model's own device and dtype: what a model costs to run. The weights do not
    change the arithmetic, so an untrained model times as its trained self (a sweep measures before
    training). The median of ``tokens`` single steps, after one to warm up."""
    device = next(model.parameters()).device
    window = torch.zeros((batch, context), dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    seconds = []
    with torch.inference_mode():
        for _ in range(tokens + 1):
            started = time.perf_counter()
            generate(model, window, 1, context)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - started)
    model.train(was_training)
    return 1000 * statistics.median(seconds[1:])
