"""Training text: fetch or read it, tokenize it once into a memory-mapped token file, cut it into windows."""

from __future__ import annotations

import codecs
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gpt.atomic import atomic_path
from gpt.config import TrainingConfig
from gpt.errors import DataError

VERDICT_URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
DOWNLOAD_TIMEOUT_S = 30
TRAIN_FRACTION = 0.9
READ_BYTES = 8 << 20  # text read and encoded per block
PIECE_CHARS = 1 << 20  # characters per tiktoken call; a block is encoded as several on all cores


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
    """Training text on disk (a download is cached first), read in blocks, never whole."""

    name: str
    path: Path
    sha256: str


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def load_source(source: str | None = None, cache_dir: Path | None = None) -> TextSource:
    """A local file or an http(s) URL; None means "The Verdict", downloaded once and cached."""
    cache_dir = cache_dir or default_cache_dir()
    if source is None or source.startswith(("http://", "https://")):
        url = source or VERDICT_URL
        expected = VERDICT_SHA256 if url == VERDICT_URL else None
        cached = cache_dir / "downloads" / (hashlib.sha1(url.encode()).hexdigest() + "-" + url.rsplit("/", 1)[-1])
        sha256 = _file_sha256(cached) if cached.is_file() else None
        if sha256 is not None and (expected is None or sha256 == expected):
            return TextSource(url, cached, sha256)
        data = _download(url, expected)
        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
        return TextSource(url, cached, _sha256(data))
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    try:
        return TextSource(str(path), path, _file_sha256(path))
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


# A single space or line break between two non-space characters: BPE pre-tokens never span one
# (a space joins the word after it, a line break stands alone), so text cut just before it encodes
# to exactly the ids of the uncut text.
_SAFE_CUT = re.compile(r"(?<=\S)[ \n](?=\S)")


def split_for_encoding(text: str, piece_chars: int) -> tuple[list[str], str]:
    """Cut ``text`` into pieces of about ``piece_chars`` at safe cuts; the uncut tail is returned
    to be continued by the next block (all of ``text`` if it holds no safe cut)."""
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        cut = None
        for match in _SAFE_CUT.finditer(text, start + piece_chars // 2, start + piece_chars):
            cut = match.start()
        if cut is None:  # no cut in this stretch: search the whole remaining text once
            match = _SAFE_CUT.search(text, start + piece_chars)
            if match is None:
                break
            cut = match.start()
        pieces.append(text[start:cut])
        start = cut
    return pieces, text[start:]


def token_dtype(encoding: tiktoken.Encoding) -> np.dtype:
    """Two bytes a token where every id fits (GPT-2's 50257 do), else four."""
    return np.dtype(np.uint16) if encoding.n_vocab <= 1 << 16 else np.dtype(np.uint32)


def encode_file(source: TextSource, encoding: tiktoken.Encoding, out: Path) -> None:
    """Stream ``source`` through ``encoding`` into ``out`` as raw token ids.

    Blocks of text are cut at safe points and encoded in parallel by tiktoken's threads,
    so memory holds one block at a time, whatever the size of the text.
    """
    dtype, threads = token_dtype(encoding), os.cpu_count() or 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail, has_text = "", False
    with (
        source.path.open("rb") as text_file,
        out.open("wb") as ids_file,
        tqdm(total=source.path.stat().st_size, unit="B", unit_scale=True, desc="Tokenizing", disable=None) as bar,
    ):
        while True:
            block = text_file.read(READ_BYTES)
            last = not block
            try:
                text = tail + decoder.decode(block, final=last)
            except UnicodeDecodeError:
                raise DataError(f"{source.name} is not UTF-8 text") from None
            if "\x00" in text:
                raise DataError(f"{source.name} is binary, not text (it holds NUL bytes)")
            has_text = has_text or (text != "" and not text.isspace())
            pieces, tail = split_for_encoding(text, PIECE_CHARS)
            if last:
                pieces, tail = [*pieces, tail], ""
            for ids in encoding.encode_batch(pieces, num_threads=threads, allowed_special={"<|endoftext|>"}):
                np.asarray(ids, dtype=dtype).tofile(ids_file)
            bar.update(len(block))
            if last:
                break
    if not has_text:
        raise DataError(f"{source.name} is empty")


@dataclass(frozen=True)
class TokenizedText:
    """Token ids for training and validation: one text split 90/10, or a training text and a
    validation text of its own (``val_source``).

    The ids are numpy arrays; those from ``tokenize`` are views of memory-mapped files,
    so only the windows a batch reads come into memory.
    """

    source: str
    sha256: str
    encoding: str
    train_ids: np.ndarray
    val_ids: np.ndarray
    val_source: str | None = None  # None: the validation ids are the last tenth of ``source``
    val_sha256: str | None = None

    @property
    def total_tokens(self) -> int:
        return len(self.train_ids) + len(self.val_ids)


def token_ids(source: TextSource, encoding: tiktoken.Encoding, cache_dir: Path | None = None) -> np.ndarray:
    """Encode once per file content and encoding into a token file; later runs map the same file."""
    dtype = token_dtype(encoding)
    cache = (cache_dir or default_cache_dir()) / "tokens" / f"{source.sha256}-{encoding.name}.{dtype.name}"
    if not cache.is_file():  # written atomically, so a file that is there is whole
        print(f"Tokenizing {source.name} once; its token ids go to {cache}", flush=True)
        with atomic_path(cache) as tmp:
            encode_file(source, encoding, tmp)
    return np.memmap(cache, dtype=dtype, mode="r")


def tokenize(
    source: TextSource,
    encoding: tiktoken.Encoding,
    cache_dir: Path | None = None,
    val_source: TextSource | None = None,
) -> TokenizedText:
    """All of ``source`` for training and all of ``val_source`` for validation, or without one,
    ``source`` split by tokens: the first 90% to train on, the rest to validate on."""
    ids = token_ids(source, encoding, cache_dir)
    if val_source is not None:
        val_ids = token_ids(val_source, encoding, cache_dir)
        return TokenizedText(
            source.name, source.sha256, encoding.name, ids, val_ids, val_source.name, val_source.sha256
        )
    split = int(TRAIN_FRACTION * len(ids))
    return TokenizedText(source.name, source.sha256, encoding.name, ids[:split], ids[split:])


class SlidingWindowDataset(Dataset):
    """Inputs of ``max_length`` tokens every ``stride`` tokens; targets are shifted by one.

    A batch of windows is read with one fancy index into the ids (``__getitems__``), so
    from a memory-mapped file only those windows are read, and turned into int64 then.
    """

    def __init__(self, ids: np.ndarray, max_length: int, stride: int) -> None:
        self.ids, self.stride = ids, stride
        self.offsets = np.arange(max_length + 1)  # one window: inputs and the target after the last
        self.count = (len(ids) - max_length - 1) // stride + 1 if len(ids) > max_length else 0

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.__getitems__([index])
        return inputs[0], targets[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if any(not 0 <= i < self.count for i in indices):
            raise IndexError(f"window index out of range 0..{self.count - 1}")
        starts = np.asarray(indices, dtype=np.int64)[:, None] * self.stride  # (B, 1)
        batch = torch.from_numpy(self.ids[starts + self.offsets].astype(np.int64))  # (B, T + 1)
        return batch[:, :-1], batch[:, 1:]


def _already_batched(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def steps_per_epoch(tokens: TokenizedText, config: TrainingConfig) -> int:
    """Optimizer steps in one epoch of ``config`` over ``tokens`` (the last short batch is dropped)."""
    return len(SlidingWindowDataset(tokens.train_ids, config.max_length, config.stride)) // config.batch_size


def training_loader(
    tokens: TokenizedText, max_length: int, stride: int, batch_size: int, num_workers: int = 0, seed: int = 123
) -> DataLoader:
    """Training batches, shuffled (seeded), the last short batch dropped.

    Validation needs no loader: ``gpt.evaluation`` scores fixed validation tokens.
    """
    if len(tokens.train_ids) < max_length + 1:
        raise DataError(
            f"the training split of {tokens.source} has {len(tokens.train_ids)} tokens, fewer than "
            f"max_length+1 = {max_length + 1}; use a shorter --max-length or more text"
        )
    if len(tokens.val_ids) < 2:
        where = tokens.val_source or f"the validation split of {tokens.source}"
        raise DataError(f"{where} has {len(tokens.val_ids)} token(s); validation needs at least 2")
    train_set = SlidingWindowDataset(tokens.train_ids, max_length, stride)
    if len(train_set) < batch_size:
        raise DataError(
            f"the training split of {tokens.source} gives {len(train_set)} windows of {max_length} tokens "
            f"(stride {stride}), fewer than batch_size {batch_size}; use a smaller --batch-size or --stride"
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        train_set, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator,
        num_workers=num_workers, collate_fn=_already_batched,
    )  # fmt: skip
