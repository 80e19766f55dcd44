"""Training text: tokenize a corpus once into a memory-mapped token file, split it, cut it into windows."""

from __future__ import annotations

import codecs
import itertools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gpt.atomic import atomic_path
from gpt.config import TrainingConfig
from gpt.corpus import READ_BYTES, Corpus, TextSource, default_cache_dir, is_record_file, records_of
from gpt.disk_space import writing
from gpt.errors import DataError

log = logging.getLogger(__name__)

TRAIN_FRACTION = 0.9
PIECE_CHARS = 1 << 20  # characters per tiktoken call; a block is encoded as several on all cores
RECORDS_PER_BATCH = 1024  # JSON records encoded at once on all cores
END_OF_TEXT = "<|endoftext|>"  # GPT-2's document separator


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


def _first_bad_line(path: Path, bad: bytes | None) -> int:
    """The number of the first line of ``path`` that is not UTF-8 (``bad`` None) or holds ``bad``."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if bad is not None and bad in line:
                return number
            if bad is None:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    return 0


class TokenWriter:
    """Token ids written to a file as they come, document after document, with one ``<|endoftext|>``
    between two documents so that no window learns across a boundary it does not see marked."""

    def __init__(self, ids_file: BinaryIO, encoding: tiktoken.Encoding) -> None:
        self.ids_file, self.dtype = ids_file, token_dtype(encoding)
        self.separator = encoding.encode_single_token(END_OF_TEXT)
        self.starts: list[int] = []  # where each document's ids start
        self.written = 0

    def start_document(self) -> None:
        if self.starts:
            self.write([self.separator])
        self.starts.append(self.written)

    def write(self, ids: list[int]) -> None:
        np.asarray(ids, dtype=self.dtype).tofile(self.ids_file)
        self.written += len(ids)


def encode_text_file(source: TextSource, encoding: tiktoken.Encoding, writer: TokenWriter, bar: tqdm) -> None:
    """Stream one text file, one document, through ``encoding`` into ``writer``.

    Blocks of text are cut at safe points and encoded in parallel by tiktoken's threads,
    so memory holds one block at a time, whatever the size of the text.
    """
    threads = os.cpu_count() or 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    tail, has_text = "", False
    writer.start_document()
    with source.path.open("rb") as text_file:
        while True:
            block = text_file.read(READ_BYTES)
            last = not block
            try:
                text = tail + decoder.decode(block, final=last)
            except UnicodeDecodeError:
                line = _first_bad_line(source.path, None)
                raise DataError(f"{source.name} is not UTF-8 text (line {line})") from None
            if "\x00" in text:
                line = _first_bad_line(source.path, b"\x00")
                raise DataError(f"{source.name} is binary, not text (it holds NUL bytes, line {line})")
            has_text = has_text or (text != "" and not text.isspace())
            pieces, tail = split_for_encoding(text, PIECE_CHARS)
            if last:
                pieces, tail = [*pieces, tail], ""
            for ids in encoding.encode_batch(pieces, num_threads=threads, allowed_special={END_OF_TEXT}):
                writer.write(ids)
            bar.update(len(block))
            if last:
                break
    if not has_text:
        raise DataError(f"{source.name} is empty")


def encode_records(
    source: TextSource, text_field: str, encoding: tiktoken.Encoding, writer: TokenWriter, bar: tqdm
) -> None:
    """Encode the document of each record of a JSON Lines or JSON file into ``writer``, a batch of
    records at a time on all cores."""
    threads, documents = os.cpu_count() or 1, records_of(source, text_field)
    while batch := list(itertools.islice(documents, RECORDS_PER_BATCH)):
        for ids in encoding.encode_batch(batch, num_threads=threads, allowed_special={END_OF_TEXT}):
            writer.start_document()
            writer.write(ids)
    bar.update(source.path.stat().st_size)


def encode_corpus(corpus: Corpus, encoding: tiktoken.Encoding, out: Path) -> np.ndarray:
    """Every document of ``corpus`` into ``out`` as raw token ids; where each document starts."""
    total_bytes = sum(f.path.stat().st_size for f in corpus.files)
    with (
        out.open("wb") as ids_file,
        tqdm(total=total_bytes, unit="B", unit_scale=True, desc="Tokenizing", disable=None) as bar,
    ):
        writer = TokenWriter(ids_file, encoding)
        for source in corpus.files:
            if is_record_file(source.path):
                encode_records(source, corpus.text_field, encoding, writer, bar)
            else:
                encode_text_file(source, encoding, writer, bar)
    if not writer.starts:
        raise DataError(f"{corpus.name} holds no documents")
    return np.asarray(writer.starts, dtype=np.int64)


@dataclass(frozen=True)
class TokenizedText:
    """Token ids for training and validation: a corpus split by whole documents (or, one text, by
    tokens: the first 90% to train on), or a training corpus and a validation corpus of its own.

    The ids are numpy arrays; those from ``tokenize`` are views of memory-mapped files,
    so only the windows a batch reads come into memory.
    """

    source: str
    sha256: str
    encoding: str
    train_ids: np.ndarray
    val_ids: np.ndarray
    val_source: str | None = None  # None: the validation ids are the last part of ``source``
    val_sha256: str | None = None
    documents: int = 1  # in the training corpus (with the validation part, when split from it)
    val_documents: int = 1  # in the validation ids: whole documents, or the tail of the one text
    split: str = "tokens"  # how the validation ids were set apart: "tokens", "documents" or "val_data"
    files: str = ""  # the corpus's files, a line each: sha256, size, name (``Corpus.listing``)
    text_field: str | None = None  # the JSON field documents were read from, where records were read

    @property
    def total_tokens(self) -> int:
        return len(self.train_ids) + len(self.val_ids)

    @property
    def file_count(self) -> int:
        """Files in the training corpus: one line each in ``files``."""
        return self.files.count("\n")

    def summary(self) -> str:
        """What was read and how it was split, in one line."""
        files = self.file_count
        counts = f"{files:,} files, {self.documents:,} documents; " if files > 1 or self.documents > 1 else ""
        validation = {
            "tokens": "the last tokens of the text",
            "documents": f"its last {self.val_documents:,} documents, whole",
            "val_data": f"{self.val_source}"
            + (f", {self.val_documents:,} documents" if self.val_documents > 1 else ""),
        }[self.split]
        return (
            f"{self.source} ({counts}{len(self.train_ids):,} train / {len(self.val_ids):,} val tokens; "
            f"validation: {validation})"
        )


def cached_corpus(
    corpus: Corpus, encoding: tiktoken.Encoding, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The corpus's token ids and document starts, encoded once per corpus key and encoding; later runs
    map the same file. The starts are written first, so a token file that is there is whole, and so
    are its starts."""
    dtype = token_dtype(encoding)
    cache = (cache_dir or default_cache_dir()) / "tokens" / f"{corpus.sha256}-{encoding.name}.{dtype.name}"
    starts_file = cache.with_name(cache.name + ".starts.npy")
    if not cache.is_file() or not starts_file.is_file():
        log.info(f"Tokenizing {corpus.name} once; its token ids go to {cache}")
        with writing("the token cache", cache.parent), atomic_path(cache) as tmp:
            starts = encode_corpus(corpus, encoding, tmp)
            with atomic_path(starts_file) as tmp_starts, tmp_starts.open("wb") as file:
                np.save(file, starts)
    return np.memmap(cache, dtype=dtype, mode="r"), np.load(starts_file)


def token_ids(source: Corpus | TextSource, encoding: tiktoken.Encoding, cache_dir: Path | None = None) -> np.ndarray:
    """The token ids of a corpus (or one text), encoded once."""
    return cached_corpus(as_corpus(source), encoding, cache_dir)[0]


def as_corpus(source: Corpus | TextSource) -> Corpus:
    return source if isinstance(source, Corpus) else Corpus.of(source)


def validation_start(ids: np.ndarray, starts: np.ndarray) -> int:
    """Where the validation part begins: the document start nearest ``TRAIN_FRACTION`` of the tokens,
    with a document on each side; in one text, the token at that fraction."""
    if len(starts) < 2:
        return int(TRAIN_FRACTION * len(ids))
    nearest = int(np.argmin(np.abs(starts[1:] - TRAIN_FRACTION * len(ids)))) + 1
    return int(starts[nearest])


def tokenize(
    source: Corpus | TextSource,
    encoding: tiktoken.Encoding,
    cache_dir: Path | None = None,
    val_source: Corpus | TextSource | None = None,
) -> TokenizedText:
    """All of ``source`` for training and all of ``val_source`` for validation, or without one,
    ``source`` split: its last documents (about 10% of the tokens) to validate on, whole; a single
    text by tokens, its first 90% to train on."""
    corpus = as_corpus(source)
    ids, starts = cached_corpus(corpus, encoding, cache_dir)
    val_corpus = as_corpus(val_source) if val_source is not None else None
    reads_records = corpus.has_records or (val_corpus is not None and val_corpus.has_records)
    described = {
        "documents": len(starts),
        "files": corpus.listing(),
        "text_field": corpus.text_field if reads_records else None,
    }
    if val_corpus is not None:
        val_ids, val_starts = cached_corpus(val_corpus, encoding, cache_dir)
        return TokenizedText(
            corpus.name, corpus.sha256, encoding.name, ids, val_ids, val_corpus.name, val_corpus.sha256,
            val_documents=len(val_starts), split="val_data", **described,
        )  # fmt: skip
    split = validation_start(ids, starts)
    by_documents = len(starts) > 1
    return TokenizedText(
        corpus.name, corpus.sha256, encoding.name, ids[:split], ids[split:],
        val_documents=int(np.sum(starts >= split)) if by_documents else 1,
        split="documents" if by_documents else "tokens", **described,
    )  # fmt: skip


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
    if tokens.split != "tokens" and len(tokens.val_ids) < max_length + 1:  # whole documents: too few to fill one window
        where = tokens.val_source or tokens.source
        raise DataError(
            f"the validation documents of {where} hold {len(tokens.val_ids)} tokens, fewer than max_length+1 = "
            f"{max_length + 1}; give more text (or --val-data) or a shorter --max-length"
        )
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
