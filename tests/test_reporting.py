"""The training callbacks on their own: MLflow batching on a real store, Optuna report steps on a real study, and
what a pruned trial says of its value and the leaderboard of a trial that never trained."""

import warnings

import optuna
from mlflow import MlflowClient

from gpt.training import EvalResult
from sweeps.admission import TrialNotRun
from sweeps.callbacks import trial_result
from sweeps.objective import PruningReporter
from sweeps.report import tidy_parallel_coordinate
from sweeps.space import DEFAULT_SPACE, SearchSpace
from sweeps.trial_states import NOT_RUN_ATTR, state_counts
from tracking.reporter import MlflowReporter
from tracking.store import connect, experiment_id


def eval_at(step: int, progress: float, val_loss: float) -> EvalResult:
    return EvalResult(epoch=1, step=step, tokens_seen=step * 8, train_loss=val_loss, val_loss=val_loss,
                      learning_rate=1e-3, tokens_per_sec=100.0, progress=progress)  # fmt: skip


def test_the_mlflow_reporter_writes_in_batches_of_at_most_1000_and_loses_nothing(store):
    client = connect(store)
    run_id = client.create_run(experiment_id(client, "batching")).info.run_id
    reporter = MlflowReporter(client, run_id)
    for step in range(2500):
        reporter.on_batch(step, 10.0 - step / 1000)
    reporter.on_eval(eval_at(2499, 1.0, 7.5))  # a recent write: the evaluation waits with the rest
    assert len(MlflowClient(store).get_metric_history(run_id, "batch_loss")) == 2000
    assert MlflowClient(store).get_metric_history(run_id, "val_loss") == []
    reporter.flush()
    history = MlflowClient(store).get_metric_history(run_id, "batch_loss")
    assert sorted(m.step for m in history) == list(range(2500))
    assert [m.value for m in MlflowClient(store).get_metric_history(run_id, "val_loss")] == [7.5]


def space_of(metric: str) -> SearchSpace:
    return SearchSpace.parse({"objective": {"metric": metric}, "params": {"drop_rate": {"type": "float", "low": 0.0,
                              "high": 0.2}}, "pruner": "none"}, DEFAULT_SPACE)  # fmt: skip


def test_the_pruning_reporter_reports_the_best_so_far_at_each_tenth_of_training_reached():
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    reporter = PruningReporter(trial, space_of("best_val_loss"), {})
    for step, progress, loss in [(0, 0.02, 9.0), (4, 0.1, 8.0), (6, 0.15, 7.0), (9, 0.27, 7.5), (39, 1.0, 6.0)]:
        reporter.on_eval(eval_at(step, progress, loss))
    frozen = study.tell(trial, 6.0)
    # 0.15 is still the first tenth: it is not reported again; 0.27 reports the best so far, 7.0.
    assert frozen.intermediate_values == {0: 9.0, 1: 8.0, 2: 7.0, 10: 6.0}


def test_the_final_val_loss_objective_reports_the_latest_value():
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    reporter = PruningReporter(trial, space_of("final_val_loss"), {})
    for step, progress, loss in [(0, 0.1, 9.0), (9, 0.5, 7.0), (19, 1.0, 7.5)]:
        reporter.on_eval(eval_at(step, progress, loss))
    assert study.tell(trial, 7.5).intermediate_values == {1: 9.0, 5: 7.0, 10: 7.5}


def test_the_parallel_coordinate_plot_keeps_every_line_visible_and_its_ticks_readable():
    import matplotlib

    matplotlib.use("Agg")
    space = SearchSpace.load(DEFAULT_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for number in range(20):
        trial = study.ask()
        space.sample(trial)
        study.tell(trial, 6.0 + number / 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = optuna.visualization.matplotlib.plot_parallel_coordinate(study)
    tidy_parallel_coordinate(axes, space)
    axes.figure.canvas.draw()

    worst_colour = axes.collections[0].get_cmap()(1.0)[:3]
    assert sum(worst_colour) / 3 < 0.85  # Optuna's own scale ends in white: lines on a white page vanish
    colour_bar = axes.collections[0].colorbar.ax
    parameter_axes = [a for a in axes.figure.axes[1:] if a is not colour_bar]
    by_name = dict(zip([t.get_text() for t in axes.get_xticklabels()][1:], parameter_axes, strict=True))
    n_layers_ticks = by_name["n_layers"].get_yticks()
    assert len(n_layers_ticks) and all(tick == int(tick) for tick in n_layers_ticks)
    learning_rate = by_name["learning_rate"]
    assert learning_rate.get_yscale() == "log"
    assert not [label for label in learning_rate.yaxis.get_minorticklabels() if label.get_text()]


def test_a_pruned_trial_says_its_value_is_the_pruners_measure_not_the_objective():
    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("config", {"eval_tokens": 256})
        trial.report(5.4321, 3)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return 5.1234

    study = optuna.create_study()
    study.optimize(objective, n_trials=2)
    complete, pruned = study.trials
    assert trial_result(complete, "final_val_loss") == "final_val_loss 5.1234"
    assert pruned.value is not None  # Optuna keeps the last report as a pruned trial's value
    assert trial_result(pruned, "final_val_loss") == (
        "pruned at 3/10 of training: val_loss 5.4321 on its 256-token validation subset, no final_val_loss"
    )
    assert "best val_loss 5.4321" in trial_result(pruned, "best_val_loss")


def test_the_leaderboard_counts_a_trial_refused_before_training_as_not_run_not_as_failed():
    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            trial.set_user_attr(NOT_RUN_ATTR, "the time budget is spent")
            raise TrialNotRun("the time budget is spent")
        if trial.number == 2:
            raise RuntimeError("a real failure")
        return 5.0

    study = optuna.create_study(study_name="counts")
    study.optimize(objective, n_trials=3, catch=(TrialNotRun, RuntimeError))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "FAIL"]
    assert state_counts(study) == "1 complete, 1 fail, 1 not run"
