import functools
import http.server
import threading

import numpy as np
import pytest
import torch

from gpt.config import PRESETS
from gpt.corpus import load_source
from gpt.data import (
    SlidingWindowDataset,
    gpt2_encoding,
    split_for_encoding,
    steps_per_epoch,
    tokenize,
    training_loader,
)
from gpt.errors import DataError


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server on loopback serving a temp folder; yields (folder, base URL, hits)."""
    folder = tmp_path / "served"
    folder.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_url_is_downloaded_once_then_read_from_the_cache(http_folder, tmp_path):
    folder, base, hits = http_folder
    (folder / "story.txt").write_text("It was a dark and stormy night.")
    first = load_source(f"{base}/story.txt", cache_dir=tmp_path / "cache")
    second = load_source(f"{base}/story.txt", cache_dir=tmp_path / "cache")
    assert first.path == second.path and first.sha256 == second.sha256
    assert first.path.read_text() == "It was a dark and stormy night."
    assert hits == ["/story.txt"]
    assert not list((tmp_path / "cache" / "downloads").glob(".*"))  # no half-written temp file left


def test_unreachable_url_names_the_offline_way_out(tmp_path):
    with pytest.raises(DataError, match="--data PATH"):
        load_source("http://127.0.0.1:9/the-verdict.txt", cache_dir=tmp_path)


def test_missing_empty_and_binary_files(tmp_path, tiny_tokenizer):
    with pytest.raises(DataError, match="data file not found"):
        load_source(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty\.txt is empty"):
        tokenize(load_source(str(tmp_path / "empty.txt")), tiny_tokenizer, tmp_path)
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DataError, match=r"blob\.bin is not UTF-8 text"):
        tokenize(load_source(str(tmp_path / "blob.bin")), tiny_tokenizer, tmp_path)
    (tmp_path / "nul.txt").write_bytes(b"text\x00more")
    with pytest.raises(DataError, match=r"nul\.txt is binary"):
        tokenize(load_source(str(tmp_path / "nul.txt")), tiny_tokenizer, tmp_path)
    assert not list(tmp_path.glob("tokens/*"))  # nothing cached for text that was refused


def test_tokenize_splits_90_10_and_caches_by_content(tmp_path, tiny_tokenizer):
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 10)
    tokens = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path / "cache")
    assert (len(tokens.train_ids), len(tokens.val_ids)) == (90, 10)
    cached = list((tmp_path / "cache" / "tokens").glob("*.uint16"))
    assert len(cached) == 1 and tokens.sha256 in cached[0].name
    assert cached[0].with_name(cached[0].name + ".starts.npy").is_file()  # where its one document starts
    assert cached[0].stat().st_size == 100 * 2  # uint16: two bytes a token
    again = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path / "cache")
    assert isinstance(again.train_ids, np.memmap)
    assert np.array_equal(again.train_ids, tokens.train_ids)


def mixed_text(lines: int) -> str:
    """Text with every kind of whitespace run, digits, punctuation, contractions and a special token."""
    rng = np.random.default_rng(0)
    words = ["the", "The", "cat's", "don't", "42", "3.14", "--", "!?", "naïve", "über", "<|endoftext|>", "\t", "x"]
    gaps = [" ", "  ", "\n", "\n\n", " \n", "\n ", "\r\n", "\t"]
    return "".join(str(rng.choice(words)) + str(rng.choice(gaps)) for _ in range(lines))


@pytest.mark.parametrize("piece_chars", [7, 50, 1000])
def test_text_cut_for_parallel_encoding_gives_the_ids_of_the_whole_text(verdict, piece_chars):
    gpt2 = gpt2_encoding()
    for text in (verdict.read_text(encoding="utf-8"), mixed_text(3000)):
        pieces, tail = split_for_encoding(text, piece_chars)
        assert "".join([*pieces, tail]) == text and len(pieces) > 1
        chunked = [i for piece in [*pieces, tail] for i in gpt2.encode(piece, allowed_special={"<|endoftext|>"})]
        assert chunked == gpt2.encode(text, allowed_special={"<|endoftext|>"})


def test_a_text_bigger_than_a_block_streams_into_the_same_ids(tmp_path, monkeypatch):
    """Blocks of 1000 bytes cut multi-byte characters and words; the ids still match encoding it whole."""
    monkeypatch.setattr("gpt.data.READ_BYTES", 1000)
    monkeypatch.setattr("gpt.data.PIECE_CHARS", 300)
    text = mixed_text(5000)
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    gpt2 = gpt2_encoding()
    tokens = tokenize(load_source(str(path)), gpt2, tmp_path / "cache")
    ids = np.concatenate([tokens.train_ids, tokens.val_ids])
    assert ids.dtype == np.uint16 and ids.tolist() == gpt2.encode(text, allowed_special={"<|endoftext|>"})


def test_sliding_windows_shift_targets_by_one():
    dataset = SlidingWindowDataset(np.arange(10, dtype=np.uint16), max_length=4, stride=2)
    assert len(dataset) == 3
    inputs, targets = dataset[1]
    assert inputs.tolist() == [2, 3, 4, 5] and targets.tolist() == [3, 4, 5, 6]
    assert inputs.dtype == torch.int64  # what the embedding takes
    with pytest.raises(IndexError):
        dataset[3]


def test_a_batch_is_the_same_windows_fetched_at_once():
    dataset = SlidingWindowDataset(np.arange(100), max_length=8, stride=5)
    assert len(dataset) == len(range(0, 100 - 8, 5))
    inputs, targets = dataset.__getitems__([3, 0, 7])
    assert torch.equal(inputs, torch.stack([dataset[i][0] for i in (3, 0, 7)]))
    assert torch.equal(targets, torch.stack([dataset[i][1] for i in (3, 0, 7)]))


def test_too_little_text_for_the_context_names_the_numbers(tmp_path, tiny_tokenizer):
    path = tmp_path / "short.txt"
    path.write_text("x" * 200)
    tokens = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path)
    with pytest.raises(DataError, match=r"training split .* has 180 tokens, fewer than max_length\+1 = 257"):
        training_loader(tokens, max_length=256, stride=256, batch_size=1)
    with pytest.raises(DataError, match="fewer than batch_size 64"):
        training_loader(tokens, max_length=8, stride=8, batch_size=64)


def test_the_training_loader_drops_the_short_batch(verdict, tiny_tokenizer, tmp_path):
    tokens = tokenize(load_source(str(verdict)), tiny_tokenizer, tmp_path)
    config = PRESETS["quick"].update(batch_size=5)
    train = training_loader(tokens, config.max_length, config.stride, config.batch_size)
    assert len(train) == steps_per_epoch(tokens, config) == len(train.dataset) // 5
