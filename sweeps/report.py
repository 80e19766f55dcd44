"""What a sweep leaves for people: the leaderboard, the trials table, Optuna's plots, the best config."""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt  # Optuna's plots draw through pyplot; runner.py picks the Agg backend
import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, MaxNLocator, NullFormatter
from optuna.trial import TrialState

from gpt.config import TrainingConfig, write_config_file
from gpt.disk_space import writing
from gpt.errors import UserError, one_line
from sweeps.metrics import METRICS_ATTR
from sweeps.pareto import feasible
from sweeps.ranking import (
    BEST_LOSS,
    Pick,
    Ranked,
    best_result,
    best_trial,
    confirmed_front,
    confirmed_ranking,
    final_order,
    maximizing,
    objectives_of,
    ranked_trials,
    score,
)
from sweeps.space import SearchSpace
from sweeps.study_runs import RUN_ID_ATTR
from sweeps.trial_states import WARM_START_ATTR, state_counts

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_LEGEND_ENTRIES = 12
PLOTS = {
    "optimization_history": optuna.visualization.matplotlib.plot_optimization_history,
    "param_importances": optuna.visualization.matplotlib.plot_param_importances,
    "parallel_coordinate": optuna.visualization.matplotlib.plot_parallel_coordinate,
    "intermediate_values": optuna.visualization.matplotlib.plot_intermediate_values,
}


def params_line(params: dict) -> str:
    """Sampled values as a person reads them: floats to 3 significant figures."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def metric_of(study: optuna.Study) -> str:
    return study.metric_names[0] if study.metric_names else "value"


def front_board(study: optuna.Study) -> list[str]:
    """With several objectives: the front, once confirmed (each member's loss its mean over seeds), best loss
    first, with every cost it measured."""
    objectives = objectives_of(study)
    lines = [
        f"Pareto front ({' against '.join(o.metric for o in objectives)}): {len(confirmed_front(study))} trials",
        f"{'trial':>5}  {objectives[0].metric + ' (mean ± std over seeds)':<40}  costs, params",
    ]
    for ranked in confirmed_front(study):
        costs = ", ".join(f"{k} {v:,.4g}" for k, v in ranked.trial.user_attrs.get(METRICS_ATTR, {}).items())
        lines.append(
            f"{ranked.trial.number:>5}  {loss_with_seeds(ranked):<40}  {costs}; {params_line(ranked.trial.params)}"
        )
    return lines


def loss_with_seeds(ranked: Ranked) -> str:
    if ranked.seeds == 1:
        return f"{ranked.mean:.4f} (one seed)"
    return f"{ranked.mean:.4f} ± {ranked.std:.4f} ({ranked.seeds})" + (" failed" if ranked.failed else "")


def leaderboard(study: optuna.Study, top: int = 5) -> str:
    """The best trials: confirmed configurations by their mean over seeds, then the other complete
    trials by their value, then the pruned ones by their last reported value. With several objectives, the
    front follows; a trial over a limit of the space says so."""
    complete = final_order(study)
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)) if score(t) is not None]
    pruned.sort(key=lambda t: -score(t) if maximizing(study) else score(t))
    confirmed = {r.trial.number: r for r in confirmed_ranking(study)}
    lines = [
        f"Study {study.study_name}: {state_counts(study)}",
        f"{'trial':>5}  {'state':<8}  {'value':>7}  {'mean ± std over seeds':<24}  {'seconds':>7}  params",
    ]
    for trial in [*complete, *pruned][:top]:
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        ranked = confirmed.get(trial.number)
        seeds = f"{ranked.mean:.4f} ± {ranked.std:.4f} ({ranked.seeds})" if ranked else "-"
        if ranked and ranked.failed:
            seeds += " failed"
        joined = trial.user_attrs.get(WARM_START_ATTR)
        lines.append(
            f"{trial.number:>5}  {trial.state.name:<8}  {score(trial):>7.4f}  {seeds:<24}  {seconds:>7.1f}  "
            f"{params_line(trial.params)}"
            + (f"  (joined from {joined})" if joined else "")
            + ("" if feasible(trial) else "  (infeasible)")
        )
    if len(study.directions) > 1 and complete:
        lines += front_board(study)
    if any(feasible(t) for t in complete):
        best = best_result(study)
        lines.append(f"Best: trial {best.trial.number}, {best.describe(metric_of(study))}")
        lines.append(f"Its MLflow run: {best.trial.user_attrs.get(RUN_ID_ATTR)}; browse all with `python runner.py ui`")
        lines.append(f"Export its config: python runner.py best --study {study.study_name} --export best.yaml")
    return "\n".join(lines)


def tidy_parallel_coordinate(axes: Axes, space: SearchSpace) -> None:
    """Optuna's parallel-coordinate plot, made readable: the worst trials' lines stay visible (its blue scale
    ends in white), int axes tick at whole numbers, and a log axis labels 1, 2 and 5 of each decade (its
    own minor labels collide)."""
    lines = axes.collections[0]
    scale = lines.get_cmap()
    # Blues_r runs from dark (best, when minimizing) to white (worst): keep its darker 60%.
    kept = np.linspace(0.0, 0.6, 256) if scale.name.endswith("_r") else np.linspace(0.4, 1.0, 256)
    lines.set_cmap(ListedColormap(scale(kept)))
    if lines.colorbar is not None:
        lines.colorbar.update_normal(lines)
    distributions = {p.name: p.distribution for p in space.params}
    names = [label.get_text() for label in axes.get_xticklabels()][1:]  # the first is the objective
    parameter_axes = [a for a in axes.figure.axes if a is not axes and a is not getattr(lines.colorbar, "ax", None)]
    for name, parameter_axis in zip(names, parameter_axes, strict=False):
        distribution = distributions.get(name)
        if isinstance(distribution, optuna.distributions.IntDistribution) and not distribution.log:
            parameter_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        if parameter_axis.get_yscale() == "log":  # labels at 1, 2 and 5 of each decade, none between
            parameter_axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            parameter_axis.yaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
            parameter_axis.yaxis.set_minor_formatter(NullFormatter())


def log_study_report(study: optuna.Study, client: MlflowClient, parent_run_id: str, space: SearchSpace) -> None:
    """Trials table and plots on the parent run; a plot that cannot be drawn is skipped, never fatal."""
    direction, metric = space.direction, space.metric
    several = {"target": lambda t: t.values[0], "target_name": metric} if space.several else {}
    with tempfile.TemporaryDirectory(prefix="gpt-sweep-") as scratch:
        table = Path(scratch) / "trials.csv"
        study.trials_dataframe().to_csv(table, index=False)
        client.log_artifact(parent_run_id, str(table))
        for name, plot in PLOTS.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                    axes = plot(study, **(several if name != "intermediate_values" else {}))
                first = axes.flat[0] if hasattr(axes, "flat") else axes
                figure = first.figure
                figure.set_size_inches(10, 6)
                if name == "parallel_coordinate":
                    tidy_parallel_coordinate(first, space)
                for axes_of_plot in figure.axes:  # Optuna titles its axes; one title per plot is ours
                    axes_of_plot.set_title("")
                figure.suptitle(f"Study {study.study_name}: {name.replace('_', ' ')} ({direction} {metric})")
                legend = first.get_legend()
                if legend is not None and len(legend.get_texts()) > MAX_LEGEND_ENTRIES:
                    legend.remove()  # a legend of one entry per trial would crowd out the plot
                path = Path(scratch) / f"{name}.png"
                figure.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(figure)
                client.log_artifact(parent_run_id, str(path), "plots")
            except Exception as exc:  # plotting must never fail a sweep
                plt.close("all")
                log.info(f"Skipped plot {name}: {one_line(exc)}")
        if space.several:
            try:
                client.log_artifact(parent_run_id, str(plot_front(study, Path(scratch) / "pareto_front.png")), "plots")
            except Exception as exc:  # as above
                plt.close("all")
                log.info(f"Skipped plot pareto_front: {one_line(exc)}")


def plot_front(study: optuna.Study, path: Path) -> Path:
    """The loss against the first cost: every complete trial, the infeasible ones crossed, and the front
    once confirmed (mean ± std over seeds) joined as a staircase."""
    objectives = objectives_of(study)
    loss, cost = objectives[0], objectives[1]
    figure, axes = plt.subplots(figsize=(8, 5.5))
    trials = ranked_trials(study)
    for ok, marker, label in ((True, "o", "trials"), (False, "x", "over a limit")):
        chosen = [t for t in trials if feasible(t) == ok]
        if chosen:
            axes.scatter([t.values[1] for t in chosen], [t.values[0] for t in chosen], marker=marker,
                         color="0.6", label=label)  # fmt: skip
    members = sorted(confirmed_front(study), key=lambda r: r.objective_values[1])
    if members:
        xs, ys = [r.objective_values[1] for r in members], [r.mean for r in members]
        axes.errorbar(xs, ys, yerr=[r.std for r in members], fmt="o", color="C0", capsize=3,
                      label="front (mean ± std over seeds)")  # fmt: skip
        axes.step(xs, ys, where="post" if cost.direction == "minimize" else "pre", color="C0", alpha=0.5)
        for r in members:
            axes.annotate(
                f"#{r.trial.number}", (r.objective_values[1], r.mean), textcoords="offset points", xytext=(4, 4)
            )
    if cost.metric.startswith("params"):
        axes.set_xscale("log")
    axes.set_xlabel(f"{cost.metric} ({cost.direction})")
    axes.set_ylabel(f"{loss.metric} ({loss.direction})")
    axes.legend()
    figure.suptitle(f"Study {study.study_name}: Pareto front")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def describe_best(study: optuna.Study, pick: Pick = BEST_LOSS) -> str:
    """The best trial (by ``pick``: from the front), its run and its params."""
    best = best_result(study, pick)
    trial = best.trial
    costs = trial.user_attrs.get(METRICS_ATTR, {}) if len(study.directions) > 1 or pick.limits else {}
    lines = [
        f"Best trial of {study.study_name}{pick.describe()}: #{trial.number}, {objectives_of(study)[0].direction}d "
        f"{best.describe(metric_of(study))}",
        *([f"  costs: {', '.join(f'{name} {value:,.6g}' for name, value in costs.items())}"] if costs else []),
        f"  MLflow run: {trial.user_attrs.get(RUN_ID_ATTR)}",
        "  params:",
        *(f"    {k}: {v}" for k, v in trial.params.items()),
    ]
    return "\n".join(lines)


def export_best(study: optuna.Study, path: str | Path, pick: Pick = BEST_LOSS) -> Path:
    """Write the best trial's (by ``pick``) full config as a file that ``runner.py single --config`` takes."""
    trial = best_trial(study, pick)
    if "config" not in trial.user_attrs:
        raise UserError(f"trial {trial.number} of {study.study_name!r} holds no config to export")
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"folder of {path} does not exist")
    with writing("the exported config", path.parent):
        return write_config_file(TrainingConfig.from_dict(trial.user_attrs["config"]), path)
