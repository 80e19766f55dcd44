"""The trial objective: train one sampled config as an MLflow child run and return its value.

It reads like Optuna's PyTorch example: suggest (``sweeps.admission.admit``, which also refuses a trial
beyond the count or on a repeated point), train, ``trial.report``, ``should_prune``, raise
``TrialPruned``, return the value. The bookkeeping after each trial (its state on the run,
the parent run's best value, checkpoint retention) lives in ``sweeps.callbacks``.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import Executor
from functools import partial
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import TrialState

from gpt.config import TrainingConfig
from gpt.data import TokenizedText, steps_per_epoch
from gpt.device import choose_device
from gpt.disk_space import OutOfSpace
from gpt.environment import LoadedText, prepare_environment
from gpt.errors import NonFiniteLossError, UserError, one_line
from gpt.generation import ms_per_generated_token
from gpt.model import GPTModel
from gpt.training import EvalResult, TrainingCallback, TrainingHistory
from sweeps.admission import Infeasible, LimitsUnmet, admit
from sweeps.metrics import INFEASIBLE_ATTR, METRICS_ATTR, broken_limits, config_metrics
from sweeps.optuna_internals import FAILED_TRIAL_ATTR
from sweeps.pareto import PARETO_MARGIN, REPORTS_ATTR, dominated_at
from sweeps.recovery import WORKER_ATTR, this_worker
from sweeps.sampling import FAIL_REASON_ATTR, LAST_PRUNING_POINT, REPORT_POINTS
from sweeps.space import SearchSpace
from sweeps.study_runs import RUN_ID_ATTR, child_run_tags, ranks_in_top
from sweeps.time_budget import FLOPS_ATTR, TimeBetweenTrials, check_time_left, trial_flops
from tracking.runs import log_metrics, log_params, run_params, tracked_run
from tracking.training import log_checkpoint, train_tracked

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from sweeps.settings import SweepSettings

# A trial that fails for one of these ends FAILED and the sweep goes on; anything else is a bug and stops it.
TRIAL_FAILURES = (NonFiniteLossError, UserError, torch.OutOfMemoryError)
MAX_REFUSED = 50  # trials refused before training for breaking a limit, after which the sweep stops


def objective_value(history: TrainingHistory, metric: str) -> float:
    """``final_val_loss``: the loss on the whole validation span after training; ``best_val_loss``: the best
    evaluation's, on the fixed subset. Both on the same tokens for every trial."""
    if not history.evals:
        raise NonFiniteLossError("training ended before its first evaluation")
    return history.best_eval.val_loss if metric == "best_val_loss" else history.final_val_loss


def trial_values(history: TrainingHistory, space: SearchSpace, metrics: dict[str, float]) -> float | tuple[float, ...]:
    """What the trial returns to Optuna: its loss, or with several objectives the loss and each cost."""
    loss = objective_value(history, space.metric)
    if not space.several:
        return loss
    return (loss, *(metrics[o.metric] for o in space.objectives[1:]))


class PruningReporter(TrainingCallback):
    """Reports to Optuna at fixed fractions of each trial's training, so steps line up across trials.

    Trials with other context lengths or batch sizes run other numbers of optimizer
    steps; the report step is the tenth of training reached (0..10), not the step. The value
    is each evaluation's loss on the fixed validation subset (for ``best_val_loss``, the best so far).
    The pruner is asked only up to ``LAST_PRUNING_POINT``: a trial past half its training finishes.
    With several objectives (Optuna refuses ``trial.report`` there) the reports go to a trial attribute,
    and the ``pareto`` pruner is ``sweeps.pareto``'s rule, given the costs the trial knows (``costs``, and
    its training speed so far).
    """

    def __init__(
        self, trial: optuna.Trial, space: SearchSpace, costs: dict[str, float], points: int = REPORT_POINTS
    ) -> None:
        self.trial, self.space, self.costs, self.points = trial, space, costs, points
        self.best, self.last_point = math.inf, -1
        self.reports: list[tuple[int, float]] = []

    def on_eval(self, result: EvalResult) -> None:
        self.best = min(self.best, result.val_loss)
        point = min(int(result.progress * self.points), self.points)
        if point <= self.last_point:
            return
        self.last_point = point
        value = self.best if self.space.metric == "best_val_loss" else result.val_loss
        if self.space.several:
            self.reports.append((point, value))
            self.trial.set_user_attr(REPORTS_ATTR, self.reports)
        else:
            self.trial.report(value, point)
        if point > LAST_PRUNING_POINT:
            return
        if self.space.pruner == "pareto":
            costs = {**self.costs, "tokens_per_second": result.tokens_per_sec}
            leader = dominated_at(self.trial.study, self.trial.number, point, value, costs, self.space.objectives)
            if leader is not None:
                raise optuna.TrialPruned(
                    f"pruned at {point}/{self.points} of training: trial {leader.number} costs no more and its "
                    f"loss there was lower by over {PARETO_MARGIN}"
                )
        elif not self.space.several and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at {point}/{self.points} of training")


def log_time_split(
    client: MlflowClient, run_id: str, history: TrainingHistory, setup_s: float, checkpoint_s: float, started: float
) -> None:
    """Where a sweep run's wall time went (``time_*_s`` metrics): setup, training steps, evaluations,
    its checkpoint, and the whole since ``started``."""
    log_metrics(client, run_id, max(history.step, 0), {
        "time_setup_s": setup_s,
        "time_train_s": history.train_seconds,
        "time_eval_s": history.eval_seconds,
        "time_checkpoint_s": checkpoint_s,
        "time_total_s": time.perf_counter() - started,
    })  # fmt: skip


def trial_config(space: SearchSpace, sampled: dict[str, Any], tokens: TokenizedText) -> tuple[TrainingConfig, int]:
    """The config a trial of ``sampled`` trains, evaluating at ``REPORT_POINTS`` fixed fractions of its
    training whatever its length, and its number of optimizer steps."""
    config = space.trial_base().update(**sampled)
    total_steps = config.training_steps(steps_per_epoch(tokens, config))
    return config.update(eval_freq=max(1, total_steps // REPORT_POINTS)), total_steps


def queue_again(trial: optuna.Trial) -> None:
    """Queue a stopped trial's point as a new waiting trial, as Optuna's retry of a stale trial does."""
    trial.study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={FAILED_TRIAL_ATTR: trial.number},
        )
    )


class TrialObjective:
    """Trains one sampled config as an MLflow child run and returns the objective."""

    def __init__(
        self,
        settings: SweepSettings,
        space: SearchSpace,
        client: MlflowClient,
        experiment_id: str,
        parent_run_id: str,
        text: LoadedText,
        plotter: Executor | None = None,
    ) -> None:
        """``plotter`` draws and uploads each trial's loss plot while the next trial trains."""
        self.settings, self.space, self.text, self.plotter = settings, space, text, plotter
        self.client, self.experiment_id, self.parent_run_id = client, experiment_id, parent_run_id
        self.between_trials = TimeBetweenTrials()

    def __call__(self, trial: optuna.Trial) -> float:
        started = time.perf_counter()
        self.between_trials.trial_starts(started)
        try:
            return self.admit_and_train(trial, started)
        finally:
            self.between_trials.trial_ended()

    def admit_and_train(self, trial: optuna.Trial, started: float) -> float:
        """Refuse the trial or train it; a failure the sweep survives is said on the trial, and a stop queues
        its point again."""
        sampled = admit(trial, self.space, self.settings.trials, partial(self.check_before_training, trial))
        try:
            return self.train(trial, sampled, started)
        except TRIAL_FAILURES as exc:
            trial.set_user_attr(FAIL_REASON_ATTR, one_line(exc, 500))
            raise
        except (KeyboardInterrupt, OutOfSpace):  # the trial ends FAILED; its point waits for the same command
            queue_again(trial)
            raise

    def check_before_training(self, trial: optuna.Trial, sampled: dict[str, Any]) -> None:
        """Record the trial's arithmetic and the costs known before training (timing its generation where the
        space asks for it); refuse it where they break a limit, or where the time budget left cannot hold it."""
        config, total_steps = trial_config(self.space, sampled, self.text.tokens)
        flops = trial_flops(config, total_steps, self.text.tokens)
        trial.set_user_attr(FLOPS_ATTR, flops.total)
        metrics = config_metrics(config)
        if self.space.measures("ms_per_token"):
            model = GPTModel(config.model).to(choose_device(self.settings.run.device)[0])
            metrics["ms_per_token"] = ms_per_generated_token(model, config.max_length)
        trial.set_user_attr(METRICS_ATTR, metrics)
        broken = self.mark_infeasible(trial, metrics)
        if broken:
            refused = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                       if INFEASIBLE_ATTR in t.user_attrs]  # fmt: skip
            if len(refused) + 1 >= MAX_REFUSED:
                raise LimitsUnmet(
                    f"infeasible, never trained: {broken}; the sweep stops: {len(refused) + 1} configurations broke "
                    "the space's limits before training (loosen its constraints)"
                )
            raise Infeasible(f"infeasible, never trained: {broken}")
        deadline = self.settings.deadline
        if deadline is not None:
            between_s = self.between_trials.longest_s
            check_time_left(trial.study, flops, deadline, between_s, self.settings.confirm, self.settings.confirm_seeds)

    def record_limits(self, trial: optuna.Trial, measured: dict[str, float]) -> str | None:
        """Give Optuna each limit's standing for ``measured`` (its constrained samplers read them: above 0 is
        that far over) and mark the trial infeasible where one is broken; return why, or None."""
        for limit in self.space.limits:
            if limit.metric in measured:
                trial.set_constraint(f"{limit.metric} {limit.bound}", limit.violation(measured[limit.metric]))
        return self.mark_infeasible(trial, measured)

    def mark_infeasible(self, trial: optuna.Trial, measured: dict[str, float]) -> str | None:
        """Mark the trial infeasible where ``measured`` breaks a limit of the space; return why, or None."""
        broken = broken_limits(self.space.limits, measured)
        if broken:
            trial.set_user_attr(INFEASIBLE_ATTR, broken)
        return broken

    def train(self, trial: optuna.Trial, sampled: dict[str, Any], started: float) -> float | tuple[float, ...]:
        """Train ``sampled`` as a child run of the sweep's parent, reporting to the pruner at tenths of
        training; the value is the space's metric (and its costs, with several objectives). A limit the
        training breaks (its speed, its loss) marks the trial infeasible. The trial's checkpoint is kept only
        where it ranks in the best ``keep_checkpoints``."""
        trial.set_user_attr(WORKER_ATTR, this_worker())
        config, _ = trial_config(self.space, sampled, self.text.tokens)
        trial.set_user_attr("config", config.to_dict())
        study_name = trial.study.study_name
        tags = child_run_tags(self.parent_run_id, study_name, trial_number=str(trial.number))
        history, pruned, checkpoint_s = TrainingHistory(), None, 0.0
        run_name = f"{study_name}-trial-{trial.number}"
        options = self.settings.run
        with tracked_run(
            self.client, self.experiment_id, run_name, tags, system_metrics=options.system_metrics
        ) as run_id:
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            env = prepare_environment(
                config, device=options.device, tokenizer=self.text.tokenizer, tokens=self.text.tokens
            )
            extra = {
                "trial_number": trial.number,
                "study": study_name,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES") if env.device.type == "cuda" else None,
            }
            log_params(self.client, run_id, run_params(env, extra))
            setup_s = time.perf_counter() - started
            metrics = dict(trial.user_attrs[METRICS_ATTR])
            reporter = PruningReporter(trial, self.space, metrics)
            try:
                train_tracked(env, self.client, run_id, [reporter], options.log_every, progress_bar=False,
                              keep_checkpoint=False, history=history, plotter=self.plotter)  # fmt: skip
                metrics["tokens_per_second"] = history.tokens_seen / max(history.train_seconds, 1e-9)
                trial.set_user_attr(METRICS_ATTR, metrics)
                log_metrics(self.client, run_id, max(history.step, 0), metrics)
                value = trial_values(history, self.space, metrics)
                loss = objective_value(history, self.space.metric)
            except optuna.TrialPruned as exc:
                pruned = exc  # the run itself finished fine; Optuna hears of the pruning below
                self.record_limits(trial, metrics)
            else:
                checkpoint_started = time.perf_counter()
                broken = self.record_limits(trial, {**metrics, self.space.metric: loss})
                if not broken and ranks_in_top(
                    trial.study, value if self.space.several else (loss,), self.settings.checkpoints_while_searching
                ):  # a sweep trial is never resumed
                    log_checkpoint(env, self.client, run_id, history, resumable=False)
                checkpoint_s = time.perf_counter() - checkpoint_started
            log_time_split(self.client, run_id, history, setup_s, checkpoint_s, started)
        if pruned is not None:
            raise pruned
        return value
