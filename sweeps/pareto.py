"""Several objectives: the Pareto front, the pruning rule that keeps it, and its hypervolume.

Optuna refuses ``trial.report`` in a study of several objectives (optuna#3450), so its pruners cannot
help there. This sweep owns the training loop, so it keeps each trial's reports itself (a user attribute,
the loss at each tenth of training) and prunes by a rule that speaks of the front:

    At a report point from 3/10 to 5/10 of training, a trial stops when a complete, feasible trial that
    costs no more in every other objective had a loss lower by more than ``PARETO_MARGIN`` at the same point.

Such a trial is dominated where it stands, by a margin the rest of training seldom closes
(``benchmarks.pruning_signal``: the 256-token subset ranks trials as their end does, Spearman 0.89 and
up from 2/10) and wider than seeds alone move a final loss, so it is unlikely to reach the front. It
starts at 3/10, not at hyperband's 2/10: across widths, small models lead early and large ones catch
up, and at 2/10 the rule cost the front 3.5% of its hypervolume (``benchmarks.pareto_sweep``). With one
objective the same rule reads: a trial stops when one already finished was better by the margin there.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.metrics import INFEASIBLE_ATTR, METRICS_ATTR, Limit, Objective
from sweeps.sampling import LAST_PRUNING_POINT

REPORTS_ATTR = "reports"  # trial user attribute: [[tenth of training, loss on the validation subset], ...]
PARETO_MARGIN = 0.1  # nats: above the seed-to-seed spread of a final loss (0.07, benchmarks.search_quality)
FIRST_PRUNING_POINT = 3  # see above


def reports_of(trial: FrozenTrial) -> dict[int, float]:
    """A trial's loss at each tenth of training it reported: Optuna's intermediate values with one objective,
    this module's attribute with several."""
    if trial.intermediate_values:
        return dict(trial.intermediate_values)
    return {int(point): value for point, value in trial.user_attrs.get(REPORTS_ATTR, [])}


def feasible(trial: FrozenTrial) -> bool:
    """Within every limit of its space (a trial over one is kept off the front and ranks last)."""
    return INFEASIBLE_ATTR not in trial.user_attrs


def metric_value(trial: FrozenTrial, metric: str, objectives: Sequence[Objective]) -> float | None:
    """A complete trial's value of ``metric``: one of its objectives, or a cost it measured."""
    for objective, value in zip(objectives, trial.values or (), strict=False):
        if objective.metric == metric:
            return value
    return trial.user_attrs.get(METRICS_ATTR, {}).get(metric)


def within(trial: FrozenTrial, limits: Sequence[Limit], objectives: Sequence[Objective]) -> bool:
    """The trial meets ``limits`` (a metric it never measured meets none)."""
    for limit in limits:
        value = metric_value(trial, limit.metric, objectives)
        if value is None or limit.violation(value) > 0:
            return False
    return True


def dominates(a: Sequence[float], b: Sequence[float], objectives: Sequence[Objective]) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one."""
    no_worse = all(o.better(x, y) for o, x, y in zip(objectives, a, b, strict=True))
    return no_worse and tuple(a) != tuple(b)


def front(points: dict[int, Sequence[float]], objectives: Sequence[Objective]) -> list[int]:
    """The keys of the points no other point dominates (ties all kept), in the order given."""
    return [k for k, p in points.items() if not any(dominates(q, p, objectives) for j, q in points.items() if j != k)]


def leads_by(a: float, b: float, margin: float, objective: Objective) -> bool:
    """Loss ``a`` is better than ``b`` by more than ``margin``."""
    return a < b - margin if objective.direction == "minimize" else a > b + margin


def dominated_at(
    study: optuna.Study,
    number: int,
    point: int,
    loss: float,
    costs: dict[str, float],
    objectives: Sequence[Objective],
    margin: float = PARETO_MARGIN,
) -> FrozenTrial | None:
    """The rule above: a complete feasible trial that dominates trial ``number`` at ``point`` (its ``loss``
    there, and its ``costs`` as known so far), or None. A cost not known yet dominates nothing."""
    if not FIRST_PRUNING_POINT <= point <= LAST_PRUNING_POINT:
        return None
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.number == number or not feasible(other):
            continue
        reported = reports_of(other).get(point)
        if reported is None or not leads_by(reported, loss, margin, objectives[0]):
            continue
        cheaper = [
            costs.get(o.metric) is not None and o.better(value, costs[o.metric])
            for o, value in zip(objectives[1:], other.values[1:], strict=True)
        ]
        if all(cheaper):
            return other
    return None


def hypervolume_2d(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The area that two-objective ``points`` (both minimised) dominate up to ``reference``."""
    inside = sorted((x, y) for x, y in points if x < reference[0] and y < reference[1])
    area, ceiling = 0.0, reference[1]
    for x, y in inside:
        if y < ceiling:
            area += (reference[0] - x) * (ceiling - y)
            ceiling = y
    return area
