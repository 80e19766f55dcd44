import functools
import http.server
import threading

import pytest
import torch

from gpt.config import PRESETS
from gpt.data import SlidingWindowDataset, create_dataloaders, load_source, steps_per_epoch, tokenize
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
    assert first.text() == second.text() == "It was a dark and stormy night."
    assert hits == ["/story.txt"]
    assert not list((tmp_path / "cache" / "downloads").glob(".*"))  # no half-written temp file left


def test_unreachable_url_names_the_offline_way_out(tmp_path):
    with pytest.raises(DataError, match="--data PATH"):
        load_source("http://127.0.0.1:9/the-verdict.txt", cache_dir=tmp_path)


def test_missing_empty_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_source(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"empty\.txt is empty"):
        load_source(str(tmp_path / "empty.txt")).text()
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(DataError, match=r"blob\.bin is not UTF-8 text"):
        load_source(str(tmp_path / "blob.bin")).text()


def test_tokenize_splits_90_10_and_caches_by_content(tmp_path, tiny_tokenizer):
    path = tmp_path / "text.txt"
    path.write_text("abcdefghij" * 10)
    tokens = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path / "cache")
    assert (len(tokens.train_ids), len(tokens.val_ids)) == (90, 10)
    cached = list((tmp_path / "cache" / "tokens").glob("*.pt"))
    assert len(cached) == 1 and tokens.sha256 in cached[0].name
    again = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path / "cache")
    assert torch.equal(again.train_ids, tokens.train_ids)


def test_sliding_windows_shift_targets_by_one():
    dataset = SlidingWindowDataset(torch.arange(10), max_length=4, stride=2)
    assert len(dataset) == 3
    inputs, targets = dataset[1]
    assert inputs.tolist() == [2, 3, 4, 5] and targets.tolist() == [3, 4, 5, 6]


def test_a_batch_is_the_same_windows_fetched_at_once():
    dataset = SlidingWindowDataset(torch.arange(100), max_length=8, stride=5)
    assert len(dataset) == len(range(0, 100 - 8, 5))
    inputs, targets = dataset.__getitems__([3, 0, 7])
    assert torch.equal(inputs, torch.stack([dataset[i][0] for i in (3, 0, 7)]))
    assert torch.equal(targets, torch.stack([dataset[i][1] for i in (3, 0, 7)]))


def test_too_little_text_for_the_context_names_the_numbers(tmp_path, tiny_tokenizer):
    path = tmp_path / "short.txt"
    path.write_text("x" * 200)
    tokens = tokenize(load_source(str(path)), tiny_tokenizer, tmp_path)
    with pytest.raises(DataError, match=r"validation split .* has 20 tokens, fewer than max_length\+1 = 33"):
        create_dataloaders(tokens, max_length=32, stride=32, batch_size=1)
    with pytest.raises(DataError, match="fewer than batch_size 64"):
        create_dataloaders(tokens, max_length=8, stride=8, batch_size=64)


def test_loaders_drop_the_short_training_batch_only(verdict, tiny_tokenizer, tmp_path):
    tokens = tokenize(load_source(str(verdict)), tiny_tokenizer, tmp_path)
    config = PRESETS["quick"].update(batch_size=5)
    train, val = create_dataloaders(tokens, config.max_length, config.stride, config.batch_size)
    assert len(train) == steps_per_epoch(tokens, config) == len(train.dataset) // 5
    assert sum(len(batch[0]) for batch in val) == len(val.dataset)
