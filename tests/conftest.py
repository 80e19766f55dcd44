"""Shared fixtures: the offline copies in ../shared, a tiny tokenizer and temp stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tiktoken
from support import SHARED, VERDICT

# tiktoken finds the gpt2 files offline here; tests never touch the network.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken-cache"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Token and download caches live in one temp folder per test session, never in ~/.cache."""
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "gpt-cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def verdict() -> Path:
    if not VERDICT.is_file():
        pytest.fail(f"offline copy of The Verdict missing at {VERDICT}")
    return VERDICT


@pytest.fixture
def tiny_tokenizer() -> tiktoken.Encoding:
    """A byte-level encoding of 257 tokens: real tiktoken, no download."""
    return tiktoken.Encoding(
        name="bytes",
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\w+| ?\d+| ?[^\s\w\d]+|\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={"<|endoftext|>": 256},
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real MLflow SQLite store in a temp folder, which is also the working folder."""
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tier first, so that a plain ``pytest`` shows a broken change within a minute; the order
    within each tier is the files' own."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
