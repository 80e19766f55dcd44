"""Which trial is best, and on how many seeds that rests.

During the search a trial has one value, from one seed. Once the search is done
``sweeps.confirm`` trains the best few configurations again with other seeds and records each
value as a study attribute; from then on the best configuration is the one with the best mean,
and every place that names "the best" (``best``, ``best --export``, the registered model, the
leaderboard) reads it from here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from gpt.errors import UserError

CONFIRMATION_PREFIX = "confirmation:"  # study user attribute per trial and seed: {"value", "run_id", "seed"}


def last_report(trial: FrozenTrial) -> tuple[int, float] | None:
    """The last point a trial reported to the pruner (a tenth of its training) and its value there."""
    if not trial.intermediate_values:
        return None
    point = max(trial.intermediate_values)
    return point, trial.intermediate_values[point]


def score(trial: FrozenTrial) -> float | None:
    """A complete trial's value, or a pruned trial's last reported one."""
    if trial.value is not None:
        return trial.value
    reported = last_report(trial)
    return reported[1] if reported else None


def confirmation_key(trial_number: int, seed: int) -> str:
    return f"{CONFIRMATION_PREFIX}{trial_number}:{seed}"


def maximizing(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first by their own (one-seed) value."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(complete, key=lambda t: t.value, reverse=maximizing(study))


@dataclass(frozen=True)
class Ranked:
    """A complete trial with its own value and those of its confirmations (None: that seed failed)."""

    trial: FrozenTrial
    values: tuple[float | None, ...]

    @property
    def seeds(self) -> int:
        return len(self.values)

    @property
    def failed(self) -> bool:
        return any(v is None for v in self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(v for v in self.values if v is not None)

    @property
    def std(self) -> float:
        """The sample standard deviation over seeds; 0 for one."""
        finite = [v for v in self.values if v is not None]
        return statistics.stdev(finite) if len(finite) > 1 else 0.0

    def describe(self, metric: str) -> str:
        """``mean final_val_loss 5.1234 ± 0.0120 over 3 seeds``, or the one value it has."""
        if self.seeds == 1:
            return f"{metric} {self.mean:.4f} (one seed, not confirmed)"
        failed = f"; {sum(v is None for v in self.values)} seed(s) failed" if self.failed else ""
        return f"mean {metric} {self.mean:.4f} ± {self.std:.4f} over {self.seeds} seeds{failed}"


def confirmations(study: optuna.Study) -> dict[int, list[dict]]:
    """Each confirmed trial's confirmation records, by trial number."""
    found: dict[int, list[dict]] = {}
    for key, record in study.user_attrs.items():
        if key.startswith(CONFIRMATION_PREFIX):
            found.setdefault(int(key[len(CONFIRMATION_PREFIX) :].split(":")[0]), []).append(record)
    return found


def confirmed_ranking(study: optuna.Study) -> list[Ranked]:
    """Complete trials with confirmations, best mean first; a configuration with a failed seed ranks last."""
    confirmed = confirmations(study)
    ranked = [
        Ranked(t, (t.value, *(r["value"] for r in sorted(confirmed[t.number], key=lambda r: r["seed"]))))
        for t in ranked_trials(study)
        if t.number in confirmed
    ]
    sign = -1 if maximizing(study) else 1
    return sorted(ranked, key=lambda r: (r.failed, sign * r.mean))


def best_result(study: optuna.Study) -> Ranked:
    """The best confirmed configuration if any was confirmed, else the best trial on its one seed."""
    confirmed = confirmed_ranking(study)
    if confirmed:
        return confirmed[0]
    trials = ranked_trials(study)
    if not trials:
        raise UserError(f"study {study.study_name!r} has no complete trial yet")
    return Ranked(trials[0], (trials[0].value,))


def best_trial(study: optuna.Study) -> FrozenTrial:
    return best_result(study).trial


def final_order(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials best first: the confirmed ones by their mean, then the others by their value."""
    confirmed = [r.trial for r in confirmed_ranking(study)]
    numbers = {t.number for t in confirmed}
    return confirmed + [t for t in ranked_trials(study) if t.number not in numbers]
