import json

import pytest

from gpt.config import PRESETS, TrainingConfig, read_config_file, resolve_config, write_config_file
from gpt.errors import ConfigError


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_heads": 3}, r"emb_dim \(64\) must be divisible by n_heads \(3\)"),
        ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
        ({"drop_rate": -0.1}, r"drop_rate must be in \[0, 1\)"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"stride": 0}, "stride must be >= 1"),
        ({"eval_tokens": 0}, "eval_tokens must be >= 1"),
        ({"final_eval_tokens": 100}, r"final_eval_tokens \(100\) must be >= eval_tokens \(256\)"),
        ({"eval_freq": -2}, "eval_freq must be >= 1"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"emb_dim": 0}, "emb_dim must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be a whole number"),
        ({"qkv_bias": "yes"}, "qkv_bias must be true or false"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"max_length": 256, "context_length": 128}, r"max_length \(256\) must be <= the model's context_length"),
        ({"warp_speed": 9}, "unknown config key 'warp_speed'"),
    ],
)
def test_bad_values_name_the_field_and_range(changes, message):
    with pytest.raises(ConfigError, match=message):
        PRESETS["quick"].update(**changes)


def test_presets_hold_the_reference_values():
    full = PRESETS["full"]
    assert (full.num_epochs, full.batch_size, full.learning_rate, full.weight_decay) == (10, 2, 2e-3, 0.1)
    assert full.model.parametrization == "mup" and full.model.base_emb_dim == PRESETS["quick"].model.emb_dim
    assert (full.eval_freq, full.max_length, full.model.context_length) == (5, 256, 256)
    assert full.start_context == "Every effort moves you"
    custom = PRESETS["custom"]
    assert (custom.num_epochs, custom.batch_size, custom.learning_rate, custom.max_length, custom.stride) == (
        5, 16, 1e-3, 512, 256,
    )  # fmt: skip
    assert (custom.model.n_heads, custom.model.n_layers, custom.model.emb_dim) == (8, 6, 512)
    assert not any(p.cosine_decay or p.warmup_steps or p.grad_clip for p in PRESETS.values())


def test_dict_round_trip_is_exact():
    config = PRESETS["quick"].update(learning_rate=3e-3, n_layers=3, cosine_decay=True, warmup_steps=2)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_custom_params_shape_with_model_overrides():
    config = TrainingConfig.from_dict({"num_epochs": 2, "model_overrides": {"n_heads": 4, "emb_dim": 128}})
    assert config.num_epochs == 2 and config.model.n_heads == 4 and config.model.emb_dim == 128
    assert config.batch_size == PRESETS["custom"].batch_size


def test_max_length_carries_the_values_tied_to_it():
    quick = PRESETS["quick"].update(max_length=64)
    assert (quick.max_length, quick.stride, quick.model.context_length) == (64, 64, 64)
    custom = PRESETS["custom"].update(max_length=256)  # overlapping windows stay as they were
    assert (custom.max_length, custom.stride, custom.model.context_length) == (256, 256, 256)
    assert PRESETS["custom"].update(max_length=128, stride=32).stride == 32


def test_flags_override_file_which_overrides_preset(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("num_epochs: 4\nbatch_size: 8\nmodel_overrides:\n  n_layers: 3\n")
    config = resolve_config("quick", read_config_file(path), {"batch_size": 2})
    assert (config.num_epochs, config.batch_size, config.model.n_layers) == (4, 2, 3)
    assert config.model.emb_dim == PRESETS["quick"].model.emb_dim


def test_written_config_file_reproduces_the_config(tmp_path):
    config = PRESETS["full"].update(seed=7, drop_rate=0.0)
    path = write_config_file(config, tmp_path / "run.yaml")
    assert resolve_config("quick", read_config_file(path)) == config


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("[1, 2]", "a.yaml", "must hold a mapping"),
        ("{bad json", "a.json", "is not valid json"),
        ("a: [", "a.yaml", "is not valid yaml"),
    ],
)
def test_broken_config_files(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_config_file(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_config_file(tmp_path / "nope.yaml")
