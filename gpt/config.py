"""Model and training configuration: validated dataclasses and the three presets.

A configuration is built once and checked once; after that every part of the
pipeline can trust it. ``TrainingConfig`` reads and writes the custom-parameter shape
(``from_dict``, ``update``, ``to_dict``), where model values travel under
``model_overrides``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gpt.atomic import atomic_path
from gpt.errors import ConfigError

MODES = ("quick", "full", "custom")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
PARAMETRIZATIONS = ("standard", "mup")  # gpt/parametrization.py says what each scales


def _coerce(owner: str, name: str, value: Any, kind: type) -> Any:
    """Turn a value read from YAML, JSON or a flag into the field's type, or say why not."""
    where = f"{owner}.{name}" if owner else name
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false (got {value!r})")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{where} must be a whole number (got {value!r})")
        return int(value)
    if kind is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where} must be a number (got {value!r})") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number (got {value!r})")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number (got {value!r})")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text (got {value!r})")
        return value
    raise TypeError(f"no coercion for {kind}")  # pragma: no cover - programming error


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


SCALAR_TYPES = {"int": int, "float": float, "str": str, "bool": bool}  # a field's annotation, as text, to its type


def _typed_values(cls: type, values: dict[str, Any], owner: str) -> dict[str, Any]:
    kinds = {f.name: SCALAR_TYPES[f.type] for f in fields(cls) if f.type in SCALAR_TYPES}
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        known = ", ".join(sorted(kinds))
        raise ConfigError(f"unknown {owner or 'config'} key {unknown[0]!r} (known: {known})")
    return {name: _coerce(owner, name, value, kinds[name]) for name, value in values.items()}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    minimum: float | None = None,
    flag: bool | str = True,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A config field with what the command line and the checks need to know of it.

    ``help`` is its flag's help text; ``minimum`` the smallest value it takes (checked by
    ``check_settings``, and the flag's range); ``flag=False`` keeps it off the command line (set by the
    code, or following another value), a text names the flag when it is not the field's name;
    ``choices`` the values a text setting takes; ``parse`` reads the flag's text where the type alone
    cannot (a duration such as ``1h30m``), raising ``ValueError`` with the reason. A new setting is one
    such field.
    """
    metadata = {"help": help, "minimum": minimum, "flag": flag, "choices": choices, "parse": parse}
    return field(default=default, metadata=metadata)


def check_settings(config: Any) -> None:
    """Each ``setting`` of a dataclass within its ``minimum`` and ``choices``; None means "not set"."""
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        minimum, choices = f.metadata.get("minimum"), f.metadata.get("choices")
        if minimum is not None:
            _require(value >= minimum, f"{f.name} must be >= {minimum} (got {value})")
        if choices:
            _require(value in choices, f"{f.name} must be one of {', '.join(choices)} (got {value!r})")


@dataclass(frozen=True)
class ModelConfig:
    """GPT-2 architecture sizes; the defaults are the 124M configuration."""

    vocab_size: int = setting(50257, minimum=1, flag=False)  # the GPT-2 tokenizer's
    context_length: int = setting(256, minimum=1, flag=False)  # follows --max-length
    emb_dim: int = setting(768, "Embedding width; a multiple of --n-heads.", minimum=1)
    n_heads: int = setting(12, "Attention heads per layer.", minimum=1)
    n_layers: int = setting(12, "Transformer blocks.", minimum=1)
    drop_rate: float = setting(0.1, "Dropout probability, in [0, 1).")
    qkv_bias: bool = setting(False, "Bias terms in the query, key and value projections.")
    parametrization: str = setting(
        "standard",
        "standard: GPT-2's; mup: the best learning rate holds across width and depth, relative to the base shape.",
        choices=PARAMETRIZATIONS,
    )
    # Under mup, the shape whose hyperparameters a run's are (the quick model's): there mup computes what
    # standard does, and a model k times as wide or deep scales its own by gpt/parametrization.py's table.
    base_emb_dim: int = setting(64, "Under mup: the width the hyperparameters were tuned at.", minimum=1)
    base_n_heads: int = setting(4, "Under mup: the head count of that base (its head size).", minimum=1)
    base_n_layers: int = setting(2, "Under mup: the depth the hyperparameters were tuned at.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)
        _require(
            self.emb_dim % self.n_heads == 0,
            f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})",
        )
        _require(0.0 <= self.drop_rate < 1.0, f"drop_rate must be in [0, 1) (got {self.drop_rate})")
        _require(
            self.base_emb_dim % self.base_n_heads == 0,
            f"base_emb_dim ({self.base_emb_dim}) must be divisible by base_n_heads ({self.base_n_heads})",
        )

    @property
    def parametrization_summary(self) -> str:
        """``standard``, or ``mup`` with the base shape its hyperparameters are relative to."""
        if self.parametrization == "standard":
            return "standard"
        return f"mup, base width {self.base_emb_dim}, {self.base_n_heads} heads, {self.base_n_layers} layers"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        return cls(**_typed_values(cls, values, "model"))

    def update(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **_typed_values(type(self), changes, "model"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MODEL_FIELDS = frozenset(f.name for f in fields(ModelConfig))
RETIRED_KEY = "eval_iter"
CUSTOM_MODEL = ModelConfig(context_length=512, n_heads=8, n_layers=6, emb_dim=512, drop_rate=0.1)


# With checkpoint_every 0, an evaluation that improves the val loss checkpoints at most this often:
# a killed run loses minutes, not hours, and a short run writes its checkpoint once, at the end.
CHECKPOINT_INTERVAL_S = 300.0


@dataclass(frozen=True)
class TrainingConfig:
    """Everything one training run needs besides data and device; the defaults are the custom preset.

    Each field is also a flag of ``runner.py single`` (``--num-epochs`` ...), built from its ``setting``.
    """

    num_epochs: int = setting(5, "Passes over the training text (a budget replaces them).", minimum=1)
    batch_size: int = setting(16, "Windows per optimizer step.", minimum=1)
    learning_rate: float = setting(1e-3, "AdamW's peak learning rate (> 0).")
    weight_decay: float = setting(0.05, "AdamW's weight decay.", minimum=0)
    eval_freq: int = setting(25, "Evaluate every N steps.", minimum=1)
    # Validation targets each evaluation during training reads: a fixed subset (one block), enough for the
    # pruner at a fraction of a trial's time (docs/performance.md, "Where a trial's time goes").
    eval_tokens: int = setting(256, "Validation tokens each evaluation during training reads.", minimum=1)
    final_eval_tokens: int = setting(
        65536, "Validation tokens the run's final_val_loss is measured on, at its end.", minimum=1
    )
    # Validation block length: the longest context compared (0: this run's), at least 256; a sweep sets it.
    eval_block: int = setting(0, minimum=0, flag=False)
    max_length: int = setting(512, "Context length in tokens (also sets the model's).", minimum=1)
    stride: int = setting(256, "Tokens between the starts of training windows.", minimum=1)
    start_context: str = setting("Every effort moves you", "Prompt for the sample after each epoch.")
    num_workers: int = setting(0, "DataLoader worker processes.", minimum=0)
    warmup_steps: int = setting(0, "Linear learning-rate warmup steps (0: off).", minimum=0)
    cosine_decay: bool = setting(False, "Cosine decay to --min-learning-rate.")
    min_learning_rate: float = setting(0.0, "The learning rate cosine decay ends at.", minimum=0)
    grad_clip: float = setting(0.0, "Clip the gradient norm to this (0: off).", minimum=0)
    seed: int = setting(123, "Seed of the weights, dropout and data order.", minimum=0)
    precision: str = setting(
        "auto",
        "auto: bf16 autocast on CUDA and on CPUs with AVX-512 BF16 or AMX, fp32 elsewhere.",
        choices=PRECISIONS,
    )
    compile: bool = setting(False, "torch.compile the model (a slow start; pays on GPUs at larger batches).")
    max_steps: int = setting(
        0, "Train this many optimizer steps, however many epochs that is (0: no budget).", minimum=0
    )
    max_tokens: int = setting(
        0,
        "Train on this many tokens, rounded up to whole batches (0: no budget); with --max-steps, the tighter wins.",
        minimum=0,
    )
    checkpoint_every: int = setting(
        0,
        "Rewrite the run's checkpoint every N steps [default 0: at evaluations that improve the val loss, "
        f"at most every {CHECKPOINT_INTERVAL_S / 60:g} minutes, and at the end].",
        minimum=0,
    )
    model: ModelConfig = field(default_factory=lambda: CUSTOM_MODEL)  # its settings are flags of their own

    def __post_init__(self) -> None:
        check_settings(self)
        _require(self.learning_rate > 0, f"learning_rate must be > 0 (got {self.learning_rate})")
        _require(
            0 <= self.min_learning_rate <= self.learning_rate,
            f"min_learning_rate must be in [0, learning_rate={self.learning_rate}] (got {self.min_learning_rate})",
        )
        _require(
            self.final_eval_tokens >= self.eval_tokens,
            f"final_eval_tokens ({self.final_eval_tokens}) must be >= eval_tokens ({self.eval_tokens})",
        )
        _require(self.start_context.strip() != "", "start_context must not be empty")
        _require(
            self.max_length <= self.model.context_length,
            f"max_length ({self.max_length}) must be <= the model's context_length ({self.model.context_length})",
        )

    def training_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run: the tighter budget if one is set, else ``num_epochs`` epochs.

        A budget may span more or fewer epochs than ``num_epochs``; runs of different batch
        sizes or context lengths given one ``max_tokens`` see the same number of tokens.
        """
        budgets = [self.max_steps] if self.max_steps else []
        if self.max_tokens:
            budgets.append(math.ceil(self.max_tokens / (self.batch_size * self.max_length)))
        return min(budgets) if budgets else self.num_epochs * steps_per_epoch

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: TrainingConfig | None = None) -> TrainingConfig:
        """Build from the custom-parameter shape, on top of ``base`` (the custom preset by default)."""
        values = dict(values)
        # Configs written before evaluations read fixed validation tokens have a batch count; unused now.
        values.pop(RETIRED_KEY, None)
        overrides = values.pop("model_overrides", None) or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"model_overrides must be a mapping (got {overrides!r})")
        return (base or PRESETS["custom"]).update(**values, **overrides)

    def update(self, **changes: Any) -> TrainingConfig:
        """A new config with ``changes``; model keys (``n_heads`` ...) may be given flat.

        Where the model's ``context_length`` or the ``stride`` equal ``max_length``,
        setting ``max_length`` alone moves them with it: a longer context needs one
        value, not three, and non-overlapping windows stay non-overlapping.
        """
        model_changes = {k: v for k, v in changes.items() if k in MODEL_FIELDS}
        own = {k: v for k, v in changes.items() if k not in MODEL_FIELDS}
        if "model" in own:
            raise ConfigError("pass model values flat or under model_overrides, not as 'model'")
        own = _typed_values(type(self), own, "")
        if "max_length" in own:
            # Values tied to max_length follow it unless they are given too.
            if "context_length" not in model_changes and self.model.context_length == self.max_length:
                model_changes["context_length"] = own["max_length"]
            if "stride" not in own and self.stride == self.max_length:
                own["stride"] = own["max_length"]
        return dataclasses.replace(self, model=self.model.update(**model_changes), **own)

    def to_flat_dict(self) -> dict[str, Any]:
        """Training and model values side by side, as flat as MLflow params are."""
        values = self.to_dict()
        model = values.pop("model_overrides")
        return {**values, **model}

    def to_dict(self) -> dict[str, Any]:
        """The custom-parameter shape: ``from_dict(to_dict())`` gives the same config back."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        values["model_overrides"] = self.model.to_dict()
        return values


QUICK_MODEL = ModelConfig(context_length=128, emb_dim=64, n_heads=4, n_layers=2)

PRESETS: dict[str, TrainingConfig] = {
    # A smoke run: a tiny model, one epoch, evaluated at every other step.
    "quick": TrainingConfig(
        num_epochs=1,
        batch_size=4,
        learning_rate=2e-3,
        weight_decay=0.1,
        eval_freq=2,
        max_length=128,
        stride=128,
        model=QUICK_MODEL,
    ),
    # The book's run (GPT-2 124M, ten epochs over "The Verdict", batch 2, context 256) under mup, at the
    # learning rate the quick model's shape found for it: README, "The full preset".
    "full": TrainingConfig(
        num_epochs=10,
        batch_size=2,
        learning_rate=2e-3,
        weight_decay=0.1,
        eval_freq=5,
        max_length=256,
        stride=256,
        model=ModelConfig(context_length=256, parametrization="mup"),
    ),
    "custom": TrainingConfig(),
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file in the custom-parameter shape."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(
            f"config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {first_line}"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return values


def resolve_config(
    mode: str = "quick",
    file_values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainingConfig:
    """Preset, then file, then flags: each later source wins."""
    if mode not in PRESETS:
        raise ConfigError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    config = PRESETS[mode]
    if file_values:
        config = TrainingConfig.from_dict(file_values, base=config)
    if overrides:
        config = config.update(**overrides)
    return config


def write_config_file(config: TrainingConfig, path: str | Path) -> Path:
    """Write ``config`` so that ``--config path`` reproduces it exactly."""
    path = Path(path)
    with atomic_path(path) as tmp:  # a full disk leaves no half-written file
        tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    return path


STRATEGIES = ("greedy", "top-k", "top-p")  # how `generate` picks each next token
DEFAULT_TOP_K = 50  # tokens top-k samples from unless told
DEFAULT_TOP_P = 0.9  # probability mass top-p samples from unless told
