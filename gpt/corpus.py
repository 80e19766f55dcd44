"""A corpus as people keep it: which files ``--data`` names, and the documents in them.

``--data`` takes one or more values, each a text file, a folder (its text and JSON files, recursively,
in sorted order), a glob, or an http(s) URL. A text file is one document; a ``.jsonl`` file holds one
document per line and a ``.json`` file one per record of its top-level list, each the string in the
record's ``text_field``. The corpus is named by its files' names, sizes and contents, so the token
cache is reused while nothing changed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt.atomic import atomic_path
from gpt.errors import DataError

VERDICT_URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"
VERDICT_SHA256 = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
DOWNLOAD_TIMEOUT_S = 30
READ_BYTES = 8 << 20  # bytes read at once: hashed here, read and encoded per block in gpt.data
TEXT_SUFFIXES = (".txt", ".text", ".md", ".rst")
RECORD_SUFFIXES = (".jsonl", ".json")
DEFAULT_TEXT_FIELD = "text"


def default_cache_dir() -> Path:
    """Where downloads and token ids are kept between runs (``GPT_CACHE_DIR`` moves it)."""
    root = os.environ.get("GPT_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "gpt-runner")
    return Path(root).expanduser()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str, expected_sha256: str | None) -> bytes:
    import requests  # here: the command line reads this module's defaults without loading requests

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


def values_of(name: str | None) -> list[str] | None:
    """The ``--data`` values a corpus's ``name`` (as a run logs it) was made from."""
    if name is None:
        return None
    return json.loads(name) if name.startswith("[") else [name]


def is_record_file(path: Path) -> bool:
    return path.suffix.lower() in RECORD_SUFFIXES


@dataclass(frozen=True)
class Corpus:
    """The files of one ``--data`` (or ``--val-data``), in the order their documents are read."""

    given: tuple[str, ...]  # the values as the user gave them; None-less (The Verdict is its URL)
    files: tuple[TextSource, ...]
    text_field: str = DEFAULT_TEXT_FIELD

    @classmethod
    def of(cls, source: TextSource) -> Corpus:
        return cls((source.name,), (source,))

    @property
    def name(self) -> str:
        """What the corpus was given as: one value, or several as a JSON list (``values_of`` reads it back)."""
        return self.given[0] if len(self.given) == 1 else json.dumps(list(self.given))

    @property
    def has_records(self) -> bool:
        return any(is_record_file(f.path) for f in self.files)

    @property
    def sha256(self) -> str:
        """The corpus's key: one plain text file's own sha256 (as runs have always logged it), else a
        hash of every file's name, size and sha256, in order, and the text field where records are read."""
        if len(self.files) == 1 and not self.has_records:
            return self.files[0].sha256
        listing = [[f.name, f.path.stat().st_size, f.sha256] for f in self.files]
        key = {"files": listing, "text_field": self.text_field if self.has_records else None}
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def listing(self) -> str:
        """One line a file: its sha256, size and name; what a run logs as the data it read."""
        return "".join(f"{f.sha256}  {f.path.stat().st_size:>12,}  {f.name}\n" for f in self.files)


def _files_in(folder: Path) -> list[Path]:
    """The text and JSON files below ``folder``, in sorted order; hidden files and folders skipped."""
    found = [
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in TEXT_SUFFIXES + RECORD_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return sorted(found)


def _paths_of(value: str) -> list[Path]:
    path = Path(value)
    if path.is_dir():
        files = _files_in(path)
        if not files:
            kinds = ", ".join(TEXT_SUFFIXES + RECORD_SUFFIXES)
            raise DataError(f"data folder {path} holds no text files ({kinds})")
        return files
    if path.exists() or not glob.has_magic(value):
        return [path]  # a missing plain path is load_source's "not found"
    matched = sorted(Path(p) for p in glob.glob(value, recursive=True) if Path(p).is_file())
    if not matched:
        raise DataError(f"data glob {value} matches no file")
    return matched


def load_corpus(
    values: str | Sequence[str] | None, text_field: str = DEFAULT_TEXT_FIELD, cache_dir: Path | None = None
) -> Corpus:
    """The corpus ``values`` name (None: The Verdict, downloaded once); each file checked to exist."""
    if values is None or isinstance(values, str):
        values = [values] if values is not None else []
    if not values:
        source = load_source(None, cache_dir)
        return Corpus((source.name,), (source,), text_field)
    files: list[TextSource] = []
    for value in values:
        if value.startswith(("http://", "https://")):
            files.append(load_source(value, cache_dir))
        else:
            files += [load_source(str(path), cache_dir) for path in _paths_of(value)]
    return Corpus(tuple(values), tuple(files), text_field)


def records_of(source: TextSource, text_field: str) -> Iterator[str]:
    """The documents of a JSON Lines or JSON file: each record's ``text_field``.

    A line or record that is not JSON, not an object, or has no such string field is an error
    naming the file and line (or record).
    """
    if source.path.suffix.lower() == ".jsonl":
        with source.path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if raw.strip():
                    yield _text_of(
                        _parsed(raw, source.name, f"line {number}"), text_field, source.name, f"line {number}"
                    )
        return
    records = _parsed(source.path.read_bytes(), source.name, "")
    if not isinstance(records, list):
        raise DataError(f"{source.name} holds a JSON {type(records).__name__}; give a list of records, or JSON Lines")
    for number, record in enumerate(records, start=1):
        yield _text_of(record, text_field, source.name, f"record {number}")


def _parsed(raw: bytes, name: str, where: str) -> object:
    at = f"{name} {where}".strip()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{at} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{at} is not JSON ({exc.msg})") from None


def _text_of(record: object, text_field: str, name: str, where: str) -> str:
    if not isinstance(record, dict):
        raise DataError(f"{name} {where} is a JSON {type(record).__name__}, not a record with a {text_field!r} field")
    if text_field not in record:
        fields = ", ".join(sorted(record)) or "none"
        raise DataError(
            f"{name} {where} has no {text_field!r} field (its fields: {fields}); pick one with --text-field"
        )
    text = record[text_field]
    if not isinstance(text, str):
        raise DataError(f"{name} {where}: field {text_field!r} is a {type(text).__name__}, not text")
    if "\x00" in text:
        raise DataError(f"{name} {where}: field {text_field!r} is binary, not text (it holds NUL characters)")
    return text
