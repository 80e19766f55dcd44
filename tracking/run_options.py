"""What a single run and a sweep share: the texts, the device, the logging and the MLflow store.

Declared once, like the training settings: ``runner.py`` builds the flags of ``single`` and ``sweep``
from these fields, and a ``RunOptions`` built from Python is checked the same way. Importing this
module imports neither MLflow nor Optuna, so the command line starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpt.config import DEVICES, check_settings, setting
from gpt.corpus import DEFAULT_TEXT_FIELD

DEFAULT_EXPERIMENT = "gpt-from-scratch"


def _sources(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """One source or several as a tuple; none given (None, or an empty repeatable flag) as None."""
    if value is None or isinstance(value, str):
        return (value,) if value else None
    return tuple(str(source) for source in value) or None


@dataclass(frozen=True)
class RunOptions:
    """Where the texts come from, where training runs, how often it logs, and the MLflow store it logs to."""

    data: tuple[str, ...] | None = setting(
        None,
        "Training corpus: a text file, a folder of them, a glob, a .jsonl/.json file of records or an "
        "http(s) URL; repeat it for several [default: The Verdict].",
    )
    val_data: tuple[str, ...] | None = setting(
        None,
        "Validation corpus of its own, in the same forms [default: the last ~10% of --data, "
        "whole documents when it has several].",
    )
    text_field: str = setting(DEFAULT_TEXT_FIELD, "The field of each JSON record that holds its document.")
    device: str = setting("auto", "Where to train.", choices=DEVICES)
    log_every: int = setting(1, "Log the batch loss every N steps.", minimum=1)
    system_metrics: bool = setting(True, "Log CPU, memory and GPU use as system/* metrics of each run.")
    experiment: str = setting(DEFAULT_EXPERIMENT, "MLflow experiment.")
    tracking_uri: str | None = setting(None, "MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].")

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _sources(self.data))
        object.__setattr__(self, "val_data", _sources(self.val_data))
        check_settings(self)
