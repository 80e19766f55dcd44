"""Sweep settings and run options are declared once: checked when built from Python, flags of the CLI,
and the library that uses them logs instead of printing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support import TINY_BASE, write_space

import runner
from gpt.config import resolve_config
from gpt.errors import ConfigError
from process_setup import PACKAGE_LOGGERS
from sweeps.settings import SweepSettings
from sweeps.sweep import run_sweep
from tracking.run_options import RunOptions
from tracking.single import run_single


def settings(tmp_path: Path, **values) -> SweepSettings:
    return SweepSettings.in_folder(tmp_path, tmp_path / "space.yaml", 2, **values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": 0}, "workers must be >= 1 (got 0)"),
        ({"confirm_seeds": 0}, "confirm_seeds must be >= 1 (got 0)"),
        ({"sampler": "bayes"}, "sampler must be one of tpe, tpe-multivariate, gp, random, grid (got 'bayes')"),
        ({"timeout": 0.0}, "timeout must be > 0 seconds (got 0.0)"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda, mps (got 'tpu')"),
        ({"log_every": 0}, "log_every must be >= 1 (got 0)"),
    ],
)
def test_a_bad_setting_from_python_is_one_config_error(tmp_path, values, message):
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **values)
    assert str(caught.value) == message


def test_a_sweep_without_its_store_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tracking_uri is not set"):
        SweepSettings(space_path=tmp_path / "space.yaml", study_name="s", storage="journal.log")


def test_run_options_take_one_source_or_several():
    assert RunOptions(data="a.txt").data == ("a.txt",)
    assert RunOptions(data=["a.txt", Path("b")], val_data=()).data == ("a.txt", "b")
    assert RunOptions(val_data=()).val_data is None


def test_in_folder_sends_run_options_to_run(tmp_path):
    made = settings(tmp_path, device="cpu", workers=2, log_every=5)
    assert (made.run.device, made.run.log_every, made.workers) == ("cpu", 5, 2)
    assert made.run.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1."),
        (["--heartbeat", "0"], "Invalid value for '--heartbeat': 0 is not in the range x>=1."),
        (["--timeout", "0"], "timeout must be > 0 seconds (got 0.0)"),
        (["--device", "tpu"], "Invalid value for '--device': 'tpu' is not one of 'auto', 'cpu', 'cuda', 'mps'."),
    ],
)
def test_a_bad_sweep_flag_is_one_line_and_status_2(tmp_path, capsys, flag, said):
    assert runner.main(["sweep", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", *flag]) == 2
    assert capsys.readouterr().err.strip() == f"Error: {said}"


def test_the_sweep_flags_default_to_the_declared_values():
    command = runner.cli.commands["sweep"]
    defaults = {option.name: option.default for option in command.params}
    declared = SweepSettings.__dataclass_fields__
    for name in ("trials", "workers", "keep_checkpoints", "heartbeat_s", "confirm", "confirm_seeds"):
        assert defaults[name] == declared[name].default
    assert defaults["log_every"] == RunOptions.__dataclass_fields__["log_every"].default


def test_the_python_api_is_silent_with_its_loggers_at_warning(tmp_path, verdict, capfd, monkeypatch):
    """A single run and a sweep through the Python API print nothing when the caller quiets the loggers."""
    monkeypatch.chdir(tmp_path)
    for name in PACKAGE_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.WARNING)
    config = resolve_config("quick", None, {"max_steps": 3, "emb_dim": 16, "n_heads": 2, "n_layers": 1})
    texts = {"data": str(verdict), "device": "cpu", "system_metrics": False}
    result = run_single(config, "quick", RunOptions(**texts, tracking_uri="sqlite:///single.db"))
    space_text = (
        TINY_BASE.replace("num_epochs: 1", "max_steps: 3")
        + "params: {max_length: {type: categorical, choices: [16]}}\n"
    )
    tiny = SweepSettings.in_folder(tmp_path, write_space(tmp_path, space_text), 1, confirm=0, **texts)
    swept = run_sweep(tiny, worker_setup=lambda placement: None)
    assert result.history.step == 2 and len(swept.study.trials) == 1
    assert capfd.readouterr().out == ""
