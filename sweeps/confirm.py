"""Confirmations: once the search is done, the best few configurations are trained again with other seeds.

A sweep's ranking rests on one seed per trial, and the luckiest seed is what a search finds
first. Each confirmation is an MLflow child run of the sweep (tagged ``confirms_trial``, not an
Optuna trial, so it never counts toward ``--trials`` nor steers the sampler); its value goes
into a study attribute, so a stopped sweep run again trains only the confirmations still missing.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from gpt.config import TrainingConfig
from gpt.environment import LoadedText, prepare_environment
from gpt.errors import one_line
from gpt.training import TrainingHistory
from sweeps.clock import Deadline, duration
from sweeps.objective import TRIAL_FAILURES, log_time_split, objective_value
from sweeps.ranking import confirmation_key, confirmed_ranking, loss_of, to_confirm
from sweeps.settings import SweepSettings
from sweeps.study_runs import child_run_tags
from tracking.runs import log_params, run_params, set_description, tracked_run
from tracking.training import train_tracked

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient


def confirmation_seeds(seed: int, count: int) -> list[int]:
    """The seeds a configuration trained with ``seed`` is confirmed with: the next ``count``."""
    return [seed + i for i in range(1, count + 1)]


def missing_confirmations(study: optuna.Study, best: int, seeds: int) -> list[tuple[FrozenTrial, int]]:
    """(trial, seed) pairs of the ``best`` trials by their own value (with several objectives, ``best``
    members of the front) not yet confirmed."""
    done = study.user_attrs
    return [
        (trial, seed)
        for trial in to_confirm(study, best)
        for seed in confirmation_seeds(TrainingConfig.from_dict(trial.user_attrs["config"]).seed, seeds)
        if confirmation_key(trial.number, seed) not in done
    ]


def confirmation_description(
    trial: FrozenTrial, seed: int, study_name: str, metric: str, result: str = "training"
) -> str:
    """A confirmation run's description in MLflow's UI: which trial it repeats, on which seed, and how it did."""
    return (
        f"**Confirmation** of trial {trial.number} of study `{study_name}` with seed {seed}: {result} "
        f"(the trial's own seed: {metric} {loss_of(trial):.4f}). The sweep ranks a configuration by the mean "
        "over its seeds."
    )


def confirmed_what(study: optuna.Study, todo: list[tuple[FrozenTrial, int]], confirm: int) -> str:
    """``the 3 best configurations``, or with several objectives ``4 members of the front``."""
    if len(study.directions) == 1:
        return f"the {confirm} best configurations"
    members = len({trial.number for trial, _ in todo})
    return f"{members} member{'s' if members > 1 else ''} of the front"


def fits_the_budget(trial: FrozenTrial, deadline: Deadline | None) -> bool:
    """A confirmation of ``trial`` is expected to end before ``deadline``: it takes about as long as the trial did."""
    return deadline is None or trial.duration is None or trial.duration.total_seconds() <= deadline.left()


def confirm_best(
    study: optuna.Study,
    settings: SweepSettings,
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str,
    text: LoadedText,
    metric: str,
) -> None:
    """Train each missing confirmation of the ``settings.confirm`` best trials, one line each."""
    todo = missing_confirmations(study, settings.confirm, settings.confirm_seeds)
    if not todo:
        return
    log.info(
        f"Confirming {confirmed_what(study, todo, settings.confirm)} with {settings.confirm_seeds} more "
        f"seed{'s' if settings.confirm_seeds > 1 else ''} each: "
        f"{len(todo)} run{'s' if len(todo) > 1 else ''} to train"
    )
    options = settings.run
    for done, (trial, seed) in enumerate(todo, start=1):
        if not fits_the_budget(trial, settings.deadline):
            log.info(
                f"Confirmations stopped: the time budget left ({duration(settings.deadline.left())}) holds no more; "
                f"{len(todo) - done + 1} not trained (running the sweep again trains them)"
            )
            return
        started = time.perf_counter()
        config = TrainingConfig.from_dict(trial.user_attrs["config"]).update(seed=seed)
        tags = child_run_tags(parent_run_id, study.study_name, confirms_trial=str(trial.number))
        record: dict[str, Any] = {"seed": seed, "value": None}
        try:
            name = f"{study.study_name}-trial-{trial.number}-seed-{seed}"
            with tracked_run(client, experiment_id, name, tags, system_metrics=options.system_metrics) as run_id:
                record["run_id"] = run_id
                set_description(client, run_id, confirmation_description(trial, seed, study.study_name, metric))
                env = prepare_environment(config, device=options.device, tokenizer=text.tokenizer, tokens=text.tokens)
                log_params(client, run_id, run_params(env, {"study": study.study_name, "confirms_trial": trial.number}))
                setup_s, history = time.perf_counter() - started, TrainingHistory()
                try:
                    train_tracked(env, client, run_id, (), options.log_every, progress_bar=False,
                                  keep_checkpoint=False, history=history)  # fmt: skip
                    record["value"] = objective_value(history, metric)
                finally:
                    log_time_split(client, run_id, history, setup_s, 0.0, started)
                value = f"{metric} {record['value']:.4f}"
                set_description(client, run_id, confirmation_description(trial, seed, study.study_name, metric, value))
        except TRIAL_FAILURES as exc:  # an unstable configuration: it ranks last, the sweep goes on
            record["fail_reason"] = one_line(exc, 500)
        study.set_user_attr(confirmation_key(trial.number, seed), record)
        standing = next(r for r in confirmed_ranking(study) if r.trial.number == trial.number)
        value = f"{record['value']:.4f}" if record["value"] is not None else f"failed ({record['fail_reason']})"
        log.info(
            f"[confirm {done}/{len(todo)}] trial {trial.number}, seed {seed}: {metric} {value} "
            f"in {time.perf_counter() - started:.1f}s; {standing.describe(metric)}"
        )
