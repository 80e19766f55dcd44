"""Corpora as people keep them: a folder, a glob, several values, JSON Lines and JSON records; documents
joined by <|endoftext|>, split whole, cached by the whole corpus, and each bad input one clear error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

import runner
from gpt.corpus import load_corpus, values_of
from gpt.data import gpt2_encoding, tokenize, training_loader
from gpt.errors import DataError
from tracking.training import DATA_FILES_ARTIFACT

EOT = "<|endoftext|>"


def joined_ids(documents: list[str]) -> list[int]:
    """The ids of the documents joined by hand: what the corpus must hold."""
    return gpt2_encoding().encode(EOT.join(documents), allowed_special={EOT})


def all_ids(tokens) -> list[int]:
    return np.concatenate([tokens.train_ids, tokens.val_ids]).tolist()


def documents(count: int, seed: int = 0) -> list[str]:
    """Documents of different lengths, each its own little story."""
    rng = np.random.default_rng(seed)
    words = ["the", "painter", "said", "nothing", "of", "his", "wife", "and", "the", "sea", "was", "grey"]
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 120)))) + "." for _ in range(count)]


@pytest.fixture
def library(tmp_path):
    """A folder of text files in nested folders, with a hidden file and a file of another kind."""
    folder = tmp_path / "library"
    texts = documents(4)
    for name, text in zip(["b.txt", "a.txt", "nested/c.md", "nested/deeper/d.txt"], texts, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / ".hidden.txt").write_text("not read")
    (folder / "image.png").write_bytes(b"\x89PNG\x00\x00")
    return folder, dict(zip(["b.txt", "a.txt", "nested/c.md", "nested/deeper/d.txt"], texts, strict=True))


def test_a_folder_is_its_text_files_in_sorted_order_joined_by_end_of_text(library, tmp_path):
    folder, texts = library
    corpus = load_corpus(str(folder), cache_dir=tmp_path / "cache")
    names = ["a.txt", "b.txt", "nested/c.md", "nested/deeper/d.txt"]
    assert [f.path for f in corpus.files] == [folder / name for name in names]
    tokens = tokenize(corpus, gpt2_encoding(), tmp_path / "cache")
    assert all_ids(tokens) == joined_ids([texts[name] for name in names])
    assert tokens.documents == 4 and tokens.split == "documents"


def test_a_glob_and_several_values_keep_the_order_given(library, tmp_path):
    folder, texts = library
    globbed = load_corpus(str(folder / "**" / "*.txt"), cache_dir=tmp_path / "cache")
    assert [f.path.name for f in globbed.files] == ["a.txt", "b.txt", "d.txt"]
    several = load_corpus([str(folder / "nested" / "c.md"), str(folder / "b.txt")], cache_dir=tmp_path / "cache")
    tokens = tokenize(several, gpt2_encoding(), tmp_path / "cache")
    assert all_ids(tokens) == joined_ids([texts["nested/c.md"], texts["b.txt"]])
    assert values_of(tokens.source) == [str(folder / "nested" / "c.md"), str(folder / "b.txt")]


def test_json_lines_and_json_records_are_one_document_each(tmp_path):
    texts = documents(6, seed=1)
    lines = tmp_path / "export.jsonl"
    lines.write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(texts[:4])) + "\n")
    records = tmp_path / "more.json"
    records.write_text(json.dumps([{"body": t, "lang": "en"} for t in texts[4:]]))
    corpus = load_corpus([str(lines), str(records)], text_field="body", cache_dir=tmp_path / "cache")
    tokens = tokenize(corpus, gpt2_encoding(), tmp_path / "cache")
    assert all_ids(tokens) == joined_ids(texts)  # no braces, no field names, no blank-line document
    assert tokens.documents == 6 and tokens.text_field == "body"


def test_the_split_keeps_documents_whole(tmp_path):
    texts = documents(20, seed=2)
    (tmp_path / "docs").mkdir()
    for number, text in enumerate(texts):
        (tmp_path / "docs" / f"{number:02}.txt").write_text(text)
    tokens = tokenize(load_corpus(str(tmp_path / "docs")), gpt2_encoding(), tmp_path / "cache")
    held_out = texts[-tokens.val_documents :]
    assert 1 <= tokens.val_documents < 20 and tokens.val_ids.tolist() == joined_ids(held_out)
    # the training part ends with the separator before the first held-out document
    assert tokens.train_ids.tolist() == [*joined_ids(texts[: -tokens.val_documents]), gpt2_encoding().eot_token]
    assert 0.8 < len(tokens.train_ids) / tokens.total_tokens < 0.97  # about 90%, at a document's start


def test_one_text_is_still_split_by_tokens(verdict, tmp_path):
    tokens = tokenize(load_corpus(str(verdict)), gpt2_encoding(), tmp_path / "cache")
    assert tokens.split == "tokens" and len(tokens.train_ids) == int(0.9 * tokens.total_tokens)


def test_the_cache_keys_on_the_whole_corpus_and_one_changed_file_rebuilds_it(library, tmp_path, caplog):
    folder, _ = library
    caplog.set_level(logging.INFO, logger="gpt")

    def tokenized() -> bool:
        said = "Tokenizing" in caplog.text
        caplog.clear()
        return said

    first = tokenize(load_corpus(str(folder)), gpt2_encoding(), tmp_path / "cache")
    assert tokenized()
    again = tokenize(load_corpus(str(folder)), gpt2_encoding(), tmp_path / "cache")
    assert not tokenized() and again.sha256 == first.sha256
    (folder / "nested" / "c.md").write_text("A new chapter.")
    changed = tokenize(load_corpus(str(folder)), gpt2_encoding(), tmp_path / "cache")
    assert tokenized() and changed.sha256 != first.sha256
    assert sorted(p.name for p in (tmp_path / "cache" / "tokens").glob("*.uint16")) == sorted(
        f"{key}-gpt2.uint16" for key in (first.sha256, changed.sha256)
    )


def test_each_bad_input_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.csv").write_text("a,b")
    with pytest.raises(DataError, match=r"data folder .*empty holds no text files"):
        load_corpus(str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"data glob .*\*\.txt matches no file"):
        load_corpus(str(tmp_path / "empty" / "*.txt"))
    cases = {
        "fields.jsonl": ('{"text": "ok"}\n{"body": "no"}\n', r"line 2 has no 'text' field \(its fields: body\)"),
        "broken.jsonl": ('{"text": "fine"}\n{"text": \n', r"broken\.jsonl line 2 is not JSON"),
        "number.jsonl": ('{"text": 42}\n', r"number\.jsonl line 1: field 'text' is a int, not text"),
        "object.json": ('{"text": "one"}', r"object\.json holds a JSON dict; give a list of records"),
    }  # fmt: skip
    for name, (content, error) in cases.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(DataError, match=error):
            tokenize(load_corpus(str(tmp_path / name)), gpt2_encoding(), tmp_path / "cache")
    (tmp_path / "latin1.txt").write_bytes("line one\nline two\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8 text \(line 3\)"):
        tokenize(load_corpus(str(tmp_path / "latin1.txt")), gpt2_encoding(), tmp_path / "cache")
    (tmp_path / "blob.txt").write_bytes(b"text\nmore\x00\x01")
    with pytest.raises(DataError, match=r"blob\.txt is binary, not text \(it holds NUL bytes, line 2\)"):
        tokenize(load_corpus(str(tmp_path / "blob.txt")), gpt2_encoding(), tmp_path / "cache")
    assert not list((tmp_path / "cache" / "tokens").glob("*"))  # nothing cached for a refused corpus


def test_validation_documents_too_short_for_the_context_are_one_line(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "1-story.txt").write_text(" ".join(documents(20, seed=3)))
    (tmp_path / "docs" / "2-epilogue.txt").write_text("The end.")  # all the validation part can be
    tokens = tokenize(load_corpus(str(tmp_path / "docs")), gpt2_encoding(), tmp_path / "cache")
    with pytest.raises(DataError, match=r"the validation documents of .*docs hold \d+ tokens, fewer than"):
        training_loader(tokens, max_length=256, stride=256, batch_size=1)


@pytest.mark.slow
def test_a_run_logs_which_corpus_it_read(library, tmp_path, monkeypatch, capsys):
    folder, _ = library
    monkeypatch.chdir(tmp_path)
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps({"text": t}) + "\n" for t in documents(30, seed=4)))
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["single", "--data", str(folder), "--data", str(records), "--max-length", "32", "--batch-size", "2"]
    assert runner.main([*args, "--max-steps", "2", "--tracking-uri", store]) == 0
    assert "5 files, 34 documents" in capsys.readouterr().out
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("gpt-from-scratch").experiment_id])
    params = run.data.params
    assert values_of(params["data_source"]) == [str(folder), str(records)]
    assert (params["data_files"], params["data_documents"], params["val_split"]) == ("5", "34", "documents")
    (tmp_path / "listed").mkdir()
    listed = client.download_artifacts(run.info.run_id, DATA_FILES_ARTIFACT, str(tmp_path / "listed"))
    names = [line.split()[-1] for line in Path(listed).read_text().splitlines()]
    in_folder = ["a.txt", "b.txt", "nested/c.md", "nested/deeper/d.txt"]
    assert names == [*(str(folder / name) for name in in_folder), str(records)]
