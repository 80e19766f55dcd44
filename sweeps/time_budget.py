"""A sweep sized by time (``--time-budget``): a trial starts only while the time left holds it and the
confirmations still to come after it.

A trial's seconds are estimated from its arithmetic (``gpt.cost.run_flops``, recorded on the trial) at
the rate this study's complete trials ran at: their seconds over their arithmetic, setup, logging and
evaluations included. Before any trial has completed, the rates are those of a few timed training steps
and an evaluation batch of the space's base configuration (``probe_rates``), which leave the overheads
out. The confirmations' time is reserved before each trial starts: each of the ``--confirm`` best
configurations (the new trial counted as one while fewer have completed) trains ``--confirm-seeds`` more
times, each about as long as its own trial took. A trial may run past its estimate, and the last one admitted
must not eat into the confirmations' time: so a trial starts only while the time left holds its estimate
stretched by how far this study's trials have run past theirs (``overrun``), and the longest this process
has spent between two trials (``TimeBetweenTrials``): Optuna's bookkeeping, the study's callbacks and the
next sampling, which no trial's duration counts and which comes before the confirmations start.
"""

from __future__ import annotations

import math
import time

import optuna
from optuna.trial import TrialState

from gpt.config import TrainingConfig
from gpt.cost import RunFlops, eval_flops_per_token, run_flops, training_flops_per_token
from gpt.data import TokenizedText
from gpt.environment import LoadedText, prepare_environment
from gpt.errors import UserError
from gpt.evaluation import BATCH_TOKENS, ValidationSpan, block_length, windows_of
from gpt.training import train_step, validation_loss
from sweeps.admission import BudgetSpent
from sweeps.clock import Deadline, ProbeRates, duration
from sweeps.ranking import confirmations, to_confirm
from sweeps.sampling import REPORT_POINTS

FLOPS_ATTR = "flops"  # a trial's arithmetic (gpt.cost.run_flops), set before it trains
PROBE_STEPS = 3  # timed after one untimed step, which pays for the first call's set-up


def trial_flops(config: TrainingConfig, total_steps: int, text: TokenizedText) -> RunFlops:
    """A trial's arithmetic: its training steps, its ``REPORT_POINTS`` evaluations and the final one."""
    return run_flops(config, total_steps, REPORT_POINTS, len(text.val_ids) - 1)


def probe_rates(config: TrainingConfig, text: LoadedText, device: str) -> ProbeRates:
    """Seconds per unit of arithmetic of a few training steps of ``config`` on this machine, and of one
    evaluation batch: a small model's steps pay more per unit than its large evaluation batches do."""
    env = prepare_environment(config, device=device, tokenizer=text.tokenizer, tokens=text.tokens)
    batches = iter(env.train_loader)
    inputs, targets = next(batches)
    train_step(env, inputs.to(env.device), targets.to(env.device), config.learning_rate).item()
    started = time.perf_counter()
    for _ in range(PROBE_STEPS):
        inputs, targets = next(batches, (inputs, targets))
        loss = train_step(env, inputs.to(env.device), targets.to(env.device), config.learning_rate)
    loss.item()  # waits for the device
    train_s = time.perf_counter() - started
    trained = PROBE_STEPS * inputs.numel() * training_flops_per_token(config.model, inputs.shape[1])
    span = ValidationSpan.of(env.tokens.val_ids, BATCH_TOKENS, block_length(config.eval_block or config.max_length))
    windows = windows_of(span, config.max_length)
    env.model.eval()
    started = time.perf_counter()
    validation_loss(env, windows)
    eval_s = time.perf_counter() - started
    read = span.tokens * eval_flops_per_token(config.model, config.max_length)
    return ProbeRates(train_s / trained, eval_s / read)


def timed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's complete trials with their arithmetic and duration: what its rate is measured on."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if FLOPS_ATTR in t.user_attrs and t.duration]  # fmt: skip


def seconds_per_flop(timed: list[optuna.trial.FrozenTrial]) -> float:
    return sum(t.duration.total_seconds() for t in timed) / sum(t.user_attrs[FLOPS_ATTR] for t in timed)


def estimated_seconds(timed: list[optuna.trial.FrozenTrial], flops: RunFlops, probe: ProbeRates) -> float:
    """A trial's seconds: at the rate the study's ``timed`` trials ran at (whole trials over their
    arithmetic), or by ``probe`` before one has completed."""
    return seconds_per_flop(timed) * flops.total if timed else probe.seconds(flops)


def overrun(timed: list[optuna.trial.FrozenTrial]) -> float:
    """How far past the study's rate its ``timed`` trials ran: the 90th percentile of each one's seconds over
    what the rate gives for its arithmetic, at least 1. A trial's time moves with the machine's load and its
    shape; this many times its estimate is what the last trial admitted may take."""
    if not timed:
        return 1.0
    rate = seconds_per_flop(timed)
    ratios = sorted(t.duration.total_seconds() / (rate * t.user_attrs[FLOPS_ATTR]) for t in timed)
    return max(1.0, ratios[math.ceil(0.9 * len(ratios)) - 1])


class TimeBetweenTrials:
    """The longest this process has spent between one trial's objective ending and the next one's starting.
    Per process: another worker, or the same sweep run again, measures its own."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self.ended_at: float | None = None

    def trial_starts(self, now: float) -> None:
        """A trial's objective starts at ``now`` (``time.perf_counter()``)."""
        if self.ended_at is not None:
            self.longest_s = max(self.longest_s, now - self.ended_at)

    def trial_ended(self) -> None:
        self.ended_at = time.perf_counter()


def confirmations_reserve(study: optuna.Study, confirm: int, confirm_seeds: int, candidate_s: float) -> float:
    """Seconds the confirmations still to come will take if a trial of ``candidate_s`` starts now."""
    if not confirm:
        return 0.0
    best = to_confirm(study, confirm)
    done = {number: len(records) for number, records in confirmations(study).items()}
    seconds = sum(max(0, confirm_seeds - done.get(t.number, 0)) * t.duration.total_seconds()
                  for t in best if t.duration)  # fmt: skip
    return seconds + (confirm_seeds * candidate_s if len(best) < confirm else 0.0)


def check_time_left(
    study: optuna.Study, flops: RunFlops, deadline: Deadline, between_s: float, confirm: int, confirm_seeds: int
) -> None:
    """Refuse a trial of ``flops`` whose estimated time, stretched by the study's ``overrun``, the ``between_s``
    after it and the confirmations after that overrun ``deadline``."""
    timed = timed_trials(study)
    trial_s = estimated_seconds(timed, flops, deadline.probe)
    longest_s = trial_s * overrun(timed)
    reserve = confirmations_reserve(study, confirm, confirm_seeds, trial_s)
    left = deadline.left()
    if longest_s + between_s + reserve > left:
        up_to = f" (up to {duration(longest_s)}, as this study's trials ran)" if longest_s > trial_s else ""
        between = f", the {duration(between_s)} between trials" if round(between_s) else ""
        after = f" and then the confirmations' {duration(reserve)}" if reserve else ""
        raise BudgetSpent(
            f"the time budget is spent: the {duration(max(0.0, left))} left holds no trial of about "
            f"{duration(trial_s)}{up_to}{between}{after}"
        )


def check_budget_holds_a_trial(budget_s: float, first_trial_s: float, confirm: int, confirm_seeds: int) -> None:
    """A budget too small for one trial (and its confirmations) is bad input, said before anything trains."""
    confirming = confirm_seeds if confirm else 0
    needed = first_trial_s * (1 + confirming)
    if needed > budget_s:
        with_confirmations = (
            f" and {confirming} confirmation run(s) (--confirm 0 leaves them out)" if confirming else ""
        )
        raise UserError(
            f"--time-budget {duration(budget_s)} is too short: one trial of this space takes about "
            f"{duration(first_trial_s)} here{with_confirmations}, timed on its base configuration"
        )
