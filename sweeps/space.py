"""Search spaces: YAML files that name a base config, what to optimise (one objective or several), limits,
and the parameters to sample.

A space is checked as a whole before any trial runs, so a typo costs one line, not a sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from gpt.config import MODEL_FIELDS, TrainingConfig, read_config_file, resolve_config
from gpt.data import TokenizedText, training_loader
from gpt.errors import ConfigError, DataError
from sweeps import PRUNERS, SAMPLERS
from sweeps.metrics import FROM_CONFIG, LOSSES, Limit, Objective, broken_limits, config_metrics

DEFAULT_SPACE = Path(__file__).resolve().parent / "default.yaml"
SPACE_KEYS = {"base", "objective", "objectives", "constraints", "params", "sampler", "pruner", "seed"}
BASE_KEYS = {"mode", "config", "overrides", "data", "val_data"}
DISTRIBUTION_KEYS = {
    "float": ({"type", "low", "high"}, {"log", "step"}),
    "int": ({"type", "low", "high"}, {"log", "step"}),
    "categorical": ({"type", "choices"}, set()),
}
MAX_LISTED_POINTS = 100_000
SETTINGS = frozenset(TrainingConfig().to_flat_dict())  # what a base may fix
# Trials compare on the base's validation tokens, so the span is not searched.
# Nor is the base shape, which says what a mup model's hyperparameters are relative to.
UNSEARCHABLE = {"start_context", "precision", "compile", "num_workers", "seed", "vocab_size", "eval_tokens",
                "final_eval_tokens", "eval_block", "base_emb_dim", "base_n_heads", "base_n_layers"}  # fmt: skip
SEARCHABLE = SETTINGS - UNSEARCHABLE


def _check_keys(where: str, values: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping (got {values!r})")
    unknown = sorted(set(values) - required - optional)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(required | optional))})")
    missing = sorted(required - set(values))
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    return values


def _objectives_of(spec: dict[str, Any]) -> tuple[Objective, ...]:
    """``objective:`` (one, the loss) or ``objectives:`` (the loss first, then costs, each once)."""
    if "objective" in spec and "objectives" in spec:
        raise ConfigError("give objective (one) or objectives (a list), not both")
    if "objectives" not in spec:
        return (Objective.parse("objective", spec.get("objective") or {}),)
    listed = spec["objectives"]
    if not isinstance(listed, list) or not listed:
        raise ConfigError(f"objectives must be a non-empty list of {{metric, direction}} (got {listed!r})")
    objectives = tuple(Objective.parse(f"objectives[{i}]", o) for i, o in enumerate(listed))
    if objectives[0].metric not in LOSSES:
        raise ConfigError(f"objectives[0] must be the loss ({' or '.join(LOSSES)}): the pruner reads it")
    metrics = [o.metric for o in objectives]
    for i, metric in enumerate(metrics[1:], start=1):
        if metric in LOSSES or metric in metrics[:i]:
            raise ConfigError(f"objectives[{i}]: {metric} is {'a loss' if metric in LOSSES else 'already named'}; "
                              "after the loss come costs, each once")  # fmt: skip
    return objectives


def _limits_of(spec: dict[str, Any]) -> tuple[Limit, ...]:
    constraints = spec.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise ConfigError(f"constraints must map metrics to {{max: N}} or {{min: N}} (got {constraints!r})")
    return tuple(Limit.parse(metric, bound) for metric, bound in constraints.items())


def _beside(space_file: Path, name: str) -> Path:
    """A path the space names: as given if absolute, else relative to the space file's folder."""
    return Path(name) if Path(name).is_absolute() else space_file.parent / name


def _texts_of(space_file: Path, base: dict[str, Any], key: str) -> tuple[str, ...] | None:
    """``base.data`` or ``base.val_data``, one value or a list (as ``--data``): a URL as it is, a file,
    folder or glob relative to the space file."""
    value = base.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"base.{key} must be a file, folder, glob or URL, or a list of them (got {value!r})")
    return tuple(v if v.startswith(("http://", "https://")) else str(_beside(space_file, v)) for v in values)


@dataclass(frozen=True)
class Param:
    """One searched value and its distribution."""

    name: str
    distribution: optuna.distributions.BaseDistribution

    @classmethod
    def parse(cls, name: str, spec: Any) -> Param:
        where = f"params.{name}"
        if name not in SEARCHABLE:
            raise ConfigError(
                f"{where}: {name!r} is not a searchable setting (choose from {', '.join(sorted(SEARCHABLE))})"
            )
        if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTION_KEYS:
            raise ConfigError(f"{where}: type must be one of {', '.join(DISTRIBUTION_KEYS)} (got {spec!r})")
        required, optional = DISTRIBUTION_KEYS[spec["type"]]
        _check_keys(where, spec, required, optional)
        if spec["type"] == "categorical":
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            return cls(name, optuna.distributions.CategoricalDistribution(choices))
        kind = int if spec["type"] == "int" else float
        low, high = spec["low"], spec["high"]
        for bound, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise ConfigError(
                    f"{where}: {bound} must be {'a whole number' if kind is int else 'a number'} (got {value!r})"
                )
        if low > high:
            raise ConfigError(f"{where}: low ({low}) must be <= high ({high})")
        log, step = bool(spec.get("log", False)), spec.get("step")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log distribution needs low > 0 (got {low})")
        if log and step is not None:
            raise ConfigError(f"{where}: log and step cannot be combined")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
            raise ConfigError(f"{where}: step must be a positive number (got {step!r})")
        if kind is int:
            distribution = optuna.distributions.IntDistribution(int(low), int(high), log=log, step=int(step or 1))
        else:
            distribution = optuna.distributions.FloatDistribution(float(low), float(high), log=log, step=step)
        return cls(name, distribution)

    def describe(self) -> str:
        """The distribution as a person writes it: ``float 1e-4..1e-2 log``, ``int 1..4``, ``one of 1, 2, 4``."""
        d = self.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return "one of " + ", ".join(str(choice) for choice in d.choices)
        kind = "int" if isinstance(d, optuna.distributions.IntDistribution) else "float"
        step = f" step {d.step:g}" if d.step not in (None, 1) else ""
        return f"{kind} {d.low:g}..{d.high:g}" + (" log" if d.log else "") + step

    def suggest(self, trial: optuna.Trial) -> Any:
        d = self.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return trial.suggest_categorical(self.name, d.choices)
        if isinstance(d, optuna.distributions.IntDistribution):
            return trial.suggest_int(self.name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(self.name, d.low, d.high, step=d.step, log=d.log)

    def holds(self, value: Any) -> bool:
        """``value`` is one this param can sample: a choice, or inside the range (on its step, if it has one)."""
        d = self.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return value in d.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not d.low <= value <= d.high:
            return False
        if isinstance(d, optuna.distributions.IntDistribution):
            return value == int(value) and (int(value) - d.low) % d.step == 0
        return d.step is None or math.isclose((value - d.low) / d.step, round((value - d.low) / d.step))

    def candidate_values(self) -> list[Any]:
        """Values to try the base config with: every choice or int, or a float range's ends."""
        d = self.distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, optuna.distributions.IntDistribution):
            return list(range(d.low, d.high + 1, d.step))
        return [d.low, d.high]


@dataclass(frozen=True)
class SearchSpace:
    """A search space file, checked as a whole: the base config every trial starts from, the objectives
    (the loss, then any costs) and limits, the searched params with their distributions, and the sampler,
    pruner and seed. Its ``sha256`` ties a study to it, so a study is never continued on another space."""

    path: Path
    sha256: str
    mode: str
    base: TrainingConfig
    objectives: tuple[Objective, ...]
    params: tuple[Param, ...]
    limits: tuple[Limit, ...] = ()
    sampler: str = "tpe-multivariate"
    pruner: str = "median"
    seed: int | None = None
    data: tuple[str, ...] | None = None  # the base's corpora, when it names them; --data and --val-data win
    val_data: tuple[str, ...] | None = None

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"search space file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read search space file {path}: {exc.strerror}") from None
        try:
            spec = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"search space {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.parse(spec, path, hashlib.sha256(raw).hexdigest())

    @classmethod
    def parse(cls, spec: Any, path: Path, sha256: str = "") -> SearchSpace:
        spec = _check_keys(f"search space {path}", spec, {"params"}, SPACE_KEYS - {"params"})
        base = _check_keys("base", spec.get("base") or {}, set(), BASE_KEYS)
        mode = base.get("mode", "quick")
        file_values = None
        if base.get("config"):
            file_values = read_config_file(_beside(path, base["config"]))
        overrides = _check_keys("base.overrides", base.get("overrides") or {}, set(), set(SETTINGS))
        base_config = resolve_config(mode, file_values, overrides)
        objectives, limits = _objectives_of(spec), _limits_of(spec)
        if not isinstance(spec["params"], dict) or not spec["params"]:
            raise ConfigError("params must name at least one setting to search")
        params = tuple(Param.parse(name, p) for name, p in spec["params"].items())
        space = cls(
            path=path,
            sha256=sha256,
            mode=mode,
            base=base_config,
            objectives=objectives,
            limits=limits,
            params=params,
            data=_texts_of(path, base, "data"),
            val_data=_texts_of(path, base, "val_data"),
        )
        pruner = spec.get("pruner") or ("pareto" if space.several else None)
        return space.with_options(spec.get("sampler"), pruner, spec.get("seed"))

    def with_options(self, sampler: str | None, pruner: str | None, seed: int | None) -> SearchSpace:
        """The space with command-line choices laid over the file's, checked."""
        sampler, pruner = sampler or self.sampler, pruner or self.pruner
        seed = self.seed if seed is None else seed
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)} (got {sampler!r})")
        if pruner not in PRUNERS:
            raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)} (got {pruner!r})")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigError(f"seed must be a whole number (got {seed!r})")
        if sampler == "grid":
            floats = [p.name for p in self.params if isinstance(p.distribution, optuna.distributions.FloatDistribution)]
            if floats:
                raise ConfigError(f"the grid sampler needs int or categorical params; {floats[0]} is a float range")
        if len(self.objectives) > 1 and pruner not in ("pareto", "none"):
            raise ConfigError(f"with several objectives the pruner is pareto or none (got {pruner!r})")
        space = SearchSpace(**{**self.__dict__, "sampler": sampler, "pruner": pruner, "seed": seed})
        space.check_combinations()
        space.check_limits_reachable()
        return space

    @property
    def metric(self) -> str:
        """The loss: the objective, or the first of several, and what the pruner reads."""
        return self.objectives[0].metric

    @property
    def direction(self) -> str:
        return self.objectives[0].direction

    @property
    def several(self) -> bool:
        return len(self.objectives) > 1

    def measures(self, metric: str) -> bool:
        """``metric`` is an objective or limited: a cost worth the time to measure."""
        return any(o.metric == metric for o in self.objectives) or any(lim.metric == metric for lim in self.limits)

    def config_limits_broken(self, config: TrainingConfig) -> str | None:
        """The limits on what a config costs (parameters, memory) that ``config`` breaks, in words, or None."""
        return broken_limits(tuple(lim for lim in self.limits if lim.metric in FROM_CONFIG), config_metrics(config))

    def point_limits_broken(self, point: tuple[Any, ...]) -> str | None:
        """``config_limits_broken`` for a point of this space's params, in their order."""
        return self.config_limits_broken(self.trial_base().update(**dict(zip(self.names, point, strict=True))))

    def check_limits_reachable(self) -> None:
        """A limit on what the config decides (parameters, memory) that no configuration of the space meets is
        bad input, said before a sweep starts. The shape params' every value is tried (a float's ends; the batch
        size's too where memory is limited), up to ``MAX_LISTED_POINTS``."""
        if not any(lim.metric in FROM_CONFIG for lim in self.limits):
            return
        memory_limited = any(lim.metric == "train_memory_mb" for lim in self.limits)
        shaping_names = {"max_length", "batch_size"} if memory_limited else {"max_length"}
        shaping = [p for p in self.params if p.name in MODEL_FIELDS or p.name in shaping_names]
        values = [p.candidate_values() for p in shaping]
        if math.prod(len(v) for v in values) > MAX_LISTED_POINTS:
            return  # too many to try; each point is still checked before it trains
        costs = []
        for point in itertools.product(*values):
            config = self.base.update(**dict(zip([p.name for p in shaping], point, strict=True)))
            if self.config_limits_broken(config) is None:
                return
            costs.append(config_metrics(config))
        limits = [lim for lim in self.limits if lim.metric in FROM_CONFIG]
        reach = ", ".join(
            f"{lim.metric} from {min(c[lim.metric] for c in costs):,.0f} to {max(c[lim.metric] for c in costs):,.0f}"
            for lim in limits
        )
        raise ConfigError(
            f"no configuration of this space meets constraints {', '.join(lim.describe() for lim in limits)} "
            f"(its configurations have {reach})"
        )

    def check_combinations(self) -> None:
        """Every value must build a valid config; n_heads must divide emb_dim whatever both are."""
        for param in self.params:
            for value in param.candidate_values():
                try:
                    self.base.update(**{param.name: value})
                except ConfigError as exc:
                    raise ConfigError(f"params.{param.name} = {value!r} cannot run: {exc}") from None
        for n_heads, emb_dim in itertools.product(self.values_of("n_heads"), self.values_of("emb_dim")):
            if emb_dim % n_heads:
                raise ConfigError(f"params: n_heads {n_heads} does not divide emb_dim {emb_dim}")

    def values_of(self, name: str) -> list[Any]:
        """What ``name`` can be in a trial: its candidates if searched, else the base value."""
        param = next((p for p in self.params if p.name == name), None)
        if param:
            return param.candidate_values()
        return [getattr(self.base.model if name in MODEL_FIELDS else self.base, name)]

    def trial_base(self) -> TrainingConfig:
        """The base each trial starts from: validation blocks as long as the space's longest context, so
        that every trial is scored on the same tokens."""
        if self.base.eval_block:
            return self.base
        return self.base.update(eval_block=max(self.values_of("max_length")))

    def check_data(self, tokens: TokenizedText) -> None:
        """Every context length and batch size the space can sample must fit the text."""
        for max_length, batch_size in itertools.product(self.values_of("max_length"), self.values_of("batch_size")):
            config = self.base.update(max_length=max_length, batch_size=batch_size)
            try:
                training_loader(tokens, config.max_length, config.stride, config.batch_size)
            except DataError as exc:
                raise ConfigError(f"params.max_length {max_length} cannot be filled: {exc}") from None

    def all_points(self) -> list[tuple[Any, ...]] | None:
        """Every point of an int and categorical space, in a fixed order.

        None when a float range makes the space endless, or when it is too large to list
        (repeats in it are then as unlikely as in an endless one).
        """
        if any(isinstance(p.distribution, optuna.distributions.FloatDistribution) for p in self.params):
            return None
        values = [p.candidate_values() for p in self.params]
        if math.prod(len(v) for v in values) > MAX_LISTED_POINTS:
            return None
        return list(itertools.product(*values))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.params}

    def describe(self) -> str:
        lines = [
            f"Search space {self.path} (sha256 {self.sha256[:12]})",
            "  objectives: " + ", ".join(f"{o.direction} {o.metric}" for o in self.objectives),
            *([f"  constraints: {', '.join(lim.describe() for lim in self.limits)}"] if self.limits else []),
            f"  sampler: {self.sampler}, pruner: {self.pruner}, seed: {self.seed}",
            "  params:",
            *(f"    {p.name}: {p.describe()}" for p in self.params),
            f"  base ({self.mode}):",
            *(f"    {k}: {v}" for k, v in self.base.to_dict().items()),
        ]
        return "\n".join(lines)
