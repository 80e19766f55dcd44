"""Which trial is best, and on how many seeds that rests.

During the search a trial has one value, from one seed. Once the search is done
``sweeps.confirm`` trains the best few configurations again with other seeds and records each
value as a study attribute; from then on the best configuration is the one with the best mean,
and every place that names "the best" (``best``, ``best --export``, the registered model, the
leaderboard) reads it from here.

With several objectives "the best" is the front's member with the best loss, or with ``--max``/``--min``
limits the best loss among the trials within them (such a trial is always on the front), or with
``--weight`` the best loss once each cost is priced in (for positive weights such a trial is on the front
too): so each place above picks from the front by a ``Pick``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from gpt.errors import UserError
from sweeps.metrics import METRICS_ATTR, Limit, Objective, Weight
from sweeps.pareto import feasible, front, metric_value, reports_of, within

CONFIRMATION_PREFIX = "confirmation:"  # study user attribute per trial and seed: {"value", "run_id", "seed"}


def last_report(trial: FrozenTrial) -> tuple[int, float] | None:
    """The last point a trial reported to the pruner (a tenth of its training) and its value there."""
    reports = reports_of(trial)
    if not reports:
        return None
    point = max(reports)
    return point, reports[point]


def loss_of(trial: FrozenTrial) -> float | None:
    """A complete trial's loss: its value, or the first of its values with several objectives."""
    return trial.values[0] if trial.values else None


def score(trial: FrozenTrial) -> float | None:
    """A complete trial's loss, or a pruned trial's last reported one."""
    if trial.state == TrialState.COMPLETE:
        return loss_of(trial)
    reported = last_report(trial)
    return reported[1] if reported else None


def objectives_of(study: optuna.Study) -> tuple[Objective, ...]:
    """What the study optimises, as its space named it (Optuna keeps the names and directions)."""
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return tuple(Objective(name, d.name.lower()) for name, d in zip(names, study.directions, strict=True))


def confirmation_key(trial_number: int, seed: int) -> str:
    return f"{CONFIRMATION_PREFIX}{trial_number}:{seed}"


def maximizing(study: optuna.Study) -> bool:
    """The loss is maximised (a study's first direction)."""
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first by their own (one-seed) loss; those over a limit of the space last."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    sign = -1 if maximizing(study) else 1
    return sorted(complete, key=lambda t: (not feasible(t), sign * loss_of(t)))


def to_confirm(study: optuna.Study, count: int) -> list[FrozenTrial]:
    """The trials confirmations train again: the ``count`` best, or with several objectives ``count``
    members of the front (by their own values) spread along it, both ends included."""
    if len(study.directions) == 1:
        return ranked_trials(study)[:count]
    members = front_trials(study)
    if len(members) <= count or count < 2:
        return members[:count]
    return [members[round(i * (len(members) - 1) / (count - 1))] for i in range(count)]


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The complete feasible trials no other dominates on their own values, best loss first."""
    candidates = {t.number: t for t in ranked_trials(study) if feasible(t)}
    kept = front({n: t.values for n, t in candidates.items()}, objectives_of(study))
    return [candidates[n] for n in kept]


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

    @property
    def objective_values(self) -> tuple[float, ...]:
        """The trial's objective values with its loss replaced by the mean over its seeds."""
        return (self.mean, *self.trial.values[1:])

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
        Ranked(t, (loss_of(t), *(r["value"] for r in sorted(confirmed[t.number], key=lambda r: r["seed"]))))
        for t in ranked_trials(study)
        if t.number in confirmed
    ]
    sign = -1 if maximizing(study) else 1
    return sorted(ranked, key=lambda r: (r.failed, sign * r.mean))


@dataclass(frozen=True)
class Pick:
    """How "the best" is chosen from a study: ``limits`` the pick must meet, ``weights`` pricing its costs
    against the loss. Empty, it is the best loss."""

    limits: tuple[Limit, ...] = ()
    weights: tuple[Weight, ...] = ()

    def describe(self) -> str:
        """`` within params <= 5,000,000, weighing params at 1e-07 a unit``, or nothing."""
        parts = []
        if self.limits:
            parts.append(f"within {', '.join(lim.describe() for lim in self.limits)}")
        if self.weights:
            parts.append(f"weighing {', '.join(w.describe() for w in self.weights)}")
        return f" {', '.join(parts)}" if parts else ""

    def check(self, study: optuna.Study, objectives: tuple[Objective, ...], ranked: list[FrozenTrial]) -> None:
        """A limit on a metric the study never measured, or a weight on one it does not optimise, is bad input."""
        measured = {o.metric for o in objectives} | {m for t in ranked for m in t.user_attrs.get(METRICS_ATTR, {})}
        for limit in self.limits:
            if limit.metric not in measured:
                raise UserError(f"study {study.study_name!r} never measured {limit.metric}; it cannot limit the pick")
        costs = [o.metric for o in objectives[1:]]
        for weight in self.weights:
            if weight.metric not in costs:
                raise UserError(
                    f"study {study.study_name!r} does not optimise {weight.metric}; a weight prices one of its "
                    f"costs ({', '.join(costs) or 'it has none: one objective'})"
                )

    def score(self, ranked: Ranked, objectives: tuple[Objective, ...]) -> float:
        """The loss (its mean over seeds) with each weighed cost priced in, lower is better."""
        loss = ranked.mean if objectives[0].direction == "minimize" else -ranked.mean
        price = 0.0
        for weight in self.weights:
            cost = metric_value(ranked.trial, weight.metric, objectives)
            direction = next(o.direction for o in objectives if o.metric == weight.metric)
            price += weight.per * (cost if direction == "minimize" else -cost)
        return loss + price


BEST_LOSS = Pick()  # no limits, no weights: the best loss


def best_result(study: optuna.Study, pick: Pick = BEST_LOSS) -> Ranked:
    """The best confirmed configuration by ``pick`` (within its limits and the space's) if one was confirmed,
    else the best such trial on its one seed."""
    objectives, ranked = objectives_of(study), ranked_trials(study)
    pick.check(study, objectives, ranked)

    def allowed(trial: FrozenTrial) -> bool:
        return feasible(trial) and within(trial, pick.limits, objectives)

    confirmed = [r for r in confirmed_ranking(study) if allowed(r.trial)]
    candidates = confirmed or [Ranked(t, (loss_of(t),)) for t in ranked if allowed(t)]
    if not candidates:
        raise UserError(f"study {study.study_name!r} has no complete trial{pick.describe()} yet")
    if not pick.weights:
        return candidates[0]  # already in order: failed seeds last, then the best mean or value
    return min(candidates, key=lambda r: (r.failed, pick.score(r, objectives)))


def best_trial(study: optuna.Study, pick: Pick = BEST_LOSS) -> FrozenTrial:
    return best_result(study, pick).trial


def confirmed_front(study: optuna.Study) -> list[Ranked]:
    """The front once confirmed: every complete feasible trial with its loss the mean over its seeds (where
    confirmed), those no other dominates, best loss first."""
    confirmed = {r.trial.number: r for r in confirmed_ranking(study)}
    ranked = {t.number: confirmed.get(t.number) or Ranked(t, (loss_of(t),)) for t in ranked_trials(study)
              if feasible(t)}  # fmt: skip
    kept = front({n: r.objective_values for n, r in ranked.items()}, objectives_of(study))
    sign = -1 if maximizing(study) else 1
    return sorted((ranked[n] for n in kept), key=lambda r: (r.failed, sign * r.mean))


def final_order(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials best first: the confirmed ones by their mean, then the others by their value."""
    confirmed = [r.trial for r in confirmed_ranking(study)]
    numbers = {t.number for t in confirmed}
    return confirmed + [t for t in ranked_trials(study) if t.number not in numbers]
