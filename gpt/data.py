"""Training text: fetch or read it, tokenize it once, and cut it into sliding windows."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import requests
import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from gpt.atomic import atomic_path
from gpt.config import TrainingConfig
from gpt.errors import DataError

VERDICT_URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
DOWNLOAD_TIMEOUT_S = 30
TRAIN_FRACTION = 0.9


def default_cache_dir() -> Path:
    """Where downloads and token ids are kept between runs (``GPT_CACHE_DIR`` moves it)."""
    root = os.environ.get("GPT_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "gpt-runner")
    return Path(root).expanduser()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, expected_sha256: str | None) -> bytes:
    try:
        response = requests.get(url, timeout=DOWNLOAD_TIMEOUT_S)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise DataError(
            f"cannot download {url} ({type(exc).__name__}); if you are offline, pass a local copy with --data PATH"
        ) from None
    if expected_sha256 and _sha256(response.content) != expected_sha256:
        raise DataError(f"download of {url} does not match its expected sha256; refusing to use it")
    return response.content


@dataclass(frozen=True)
class TextSource:
    """Raw training bytes and where they came from."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return _sha256(self.data)

    def text(self) -> str:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{self.name} is not UTF-8 text") from None
        if "\x00" in text:
            raise DataError(f"{self.name} is binary, not text (it holds NUL bytes)")
        if not text.strip():
            raise DataError(f"{self.name} is empty")
        return text


def load_source(source: str | None = None, cache_dir: Path | None = None) -> TextSource:
    """Read a local file or an http(s) URL; None means "The Verdict", downloaded once and cached."""
    cache_dir = cache_dir or default_cache_dir()
    if source is None or source.startswith(("http://", "https://")):
        url = source or VERDICT_URL
        expected = VERDICT_SHA256 if url == VERDICT_URL else None
        cached = cache_dir / "downloads" / (hashlib.sha1(url.encode()).hexdigest() + "-" + url.rsplit("/", 1)[-1])
        if cached.is_file() and (expected is None or _sha256(cached.read_bytes()) == expected):
            return TextSource(url, cached.read_bytes())
        data = _download(url, expected)
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
        return TextSource(url, data)
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    try:
        return TextSource(str(path), path.read_bytes())
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None


def gpt2_encoding() -> tiktoken.Encoding:
    """GPT-2's BPE; tiktoken fetches it once (``TIKTOKEN_CACHE_DIR`` points at an offline copy)."""
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as exc:  # tiktoken raises plain request or value errors when offline
        raise DataError(
            f"cannot load tiktoken's gpt2 encoding ({type(exc).__name__}); offline, set TIKTOKEN_CACHE_DIR "
            "to a folder holding its files"
        ) from None


@dataclass(frozen=True)
class TokenizedText:
    """Token ids of a whole text, split 90/10 into training and validation."""

    source: str
    sha256: str
    encoding: str
    train_ids: torch.Tensor
    val_ids: torch.Tensor

    @property
    def total_tokens(self) -> int:
        return len(self.train_ids) + len(self.val_ids)


def tokenize(source: TextSource, encoding: tiktoken.Encoding, cache_dir: Path | None = None) -> TokenizedText:
    """Encode once per file content and encoding; later runs load the cached ids."""
    cache = (cache_dir or default_cache_dir()) / "tokens" / f"{source.sha256}-{encoding.name}.pt"
    ids = None
    if cache.is_file():
        try:
            ids = torch.load(cache, weights_only=True)
        except Exception:  # a damaged cache file is rebuilt, never trusted
            ids = None
    if ids is None:
        ids = torch.tensor(encoding.encode(source.text(), allowed_special={"<|endoftext|>"}), dtype=torch.long)
        with atomic_path(cache) as tmp:
            torch.save(ids, tmp)
    split = int(TRAIN_FRACTION * len(ids))
    return TokenizedText(source.name, source.sha256, encoding.name, ids[:split], ids[split:])


class SlidingWindowDataset(Dataset):
    """Inputs of ``max_length`` tokens every ``stride`` tokens; targets are shifted by one.

    The windows are one strided view of the ids (``unfold``), and a batch is fetched
    with one indexing operation (``__getitems__``) instead of stacking samples in Python.
    """

    def __init__(self, ids: torch.Tensor, max_length: int, stride: int) -> None:
        self.windows = ids.unfold(0, max_length + 1, stride) if len(ids) > max_length else ids.new_empty(0, 0)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.windows[index]
        return window[:-1], window[1:]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.windows[torch.as_tensor(indices)]
        return batch[:, :-1], batch[:, 1:]


def _already_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def steps_per_epoch(tokens: TokenizedText, config: TrainingConfig) -> int:
    """Optimizer steps in one epoch of ``config`` over ``tokens`` (the last short batch is dropped)."""
    return len(SlidingWindowDataset(tokens.train_ids, config.max_length, config.stride)) // config.batch_size


def create_dataloaders(
    tokens: TokenizedText,
    max_length: int,
    stride: int,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 123,
) -> tuple[DataLoader, DataLoader]:
    """Training batches are shuffled (seeded) with the last short batch dropped; validation keeps all."""
    for split, ids in (("training", tokens.train_ids), ("validation", tokens.val_ids)):
        if len(ids) < max_length + 1:
            raise DataError(
                f"the {split} split of {tokens.source} has {len(ids)} tokens, fewer than "
                f"max_length+1 = {max_length + 1}; use a shorter --max-length or more text"
            )
    train_set = SlidingWindowDataset(tokens.train_ids, max_length, stride)
    if len(train_set) < batch_size:
        raise DataError(
            f"the training split of {tokens.source} gives {len(train_set)} windows of {max_length} tokens "
            f"(stride {stride}), fewer than batch_size {batch_size}; use a smaller --batch-size or --stride"
        )
    generator = torch.Generator().manual_seed(seed)
    shared = {"batch_size": batch_size, "num_workers": num_workers, "collate_fn": _already_batched}
    train_loader = DataLoader(train_set, shuffle=True, drop_last=True, generator=generator, **shared)
    val_loader = DataLoader(SlidingWindowDataset(tokens.val_ids, max_length, stride), shuffle=False, **shared)
    return train_loader, val_loader
