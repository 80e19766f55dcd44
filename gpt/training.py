"""The training loop. It knows nothing of tracking or search: it reports to callbacks."""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from gpt.config import CHECKPOINT_INTERVAL_S, TrainingConfig
from gpt.device import autocast
from gpt.environment import TrainingSetup
from gpt.errors import NonFiniteLossError
from gpt.evaluation import Windows, window_batches
from gpt.generation import generate, text_to_token_ids, token_ids_to_text
from gpt.interrupt import stop_if_signalled

log = logging.getLogger(__name__)

SAMPLE_TOKENS = 50


@dataclass(frozen=True)
class EvalResult:
    epoch: int
    step: int
    tokens_seen: int
    train_loss: float
    val_loss: float
    learning_rate: float
    tokens_per_sec: float
    progress: float  # fraction of all training steps done, for comparing runs of different lengths
    final_val_loss: float | None = None  # at the last step only: the loss on the whole validation span


@dataclass
class TrainingHistory:
    """Filled in as training goes, so a caller still has it after an interrupt."""

    total_steps: int = 0
    step: int = -1
    tokens_seen: int = 0
    evals: list[EvalResult] = field(default_factory=list)
    batch_losses: list[tuple[int, float]] = field(default_factory=list)
    samples: list[tuple[int, str]] = field(default_factory=list)
    loader_state_at_epoch_start: torch.Tensor | None = None  # to replay a half-done epoch's data order
    train_seconds: float = 0.0  # wall time in optimizer steps
    eval_seconds: float = 0.0  # wall time in evaluations and the per-epoch samples

    @property
    def best_eval(self) -> EvalResult | None:
        return min(self.evals, key=lambda e: e.val_loss, default=None)

    @property
    def final_val_loss(self) -> float | None:
        """The loss on the whole validation span after the last step; None if training stopped before it."""
        return self.evals[-1].final_val_loss if self.evals else None


class TrainingCallback:
    """Hooks the loop calls; subclasses override what they need. Raising stops training."""

    def on_batch(self, step: int, loss: float) -> None:
        """Every ``log_every`` steps, with that step's batch loss."""

    def on_eval(self, result: EvalResult) -> None:
        """At every evaluation."""

    def on_epoch_end(self, epoch: int, sample: str) -> None:
        """After each epoch, with a greedy sample from the start context."""

    def on_checkpoint(self, history: TrainingHistory) -> None:
        """When a checkpoint is due during training (``checkpoint_every``); the losses of every
        step so far are in ``history``. The end of training is left to the caller."""


class ConsoleReporter(TrainingCallback):
    """Logs a line per evaluation and the sample after each epoch (the command line shows them)."""

    def on_eval(self, result: EvalResult) -> None:
        final = "" if result.final_val_loss is None else f", on the whole validation span {result.final_val_loss:.3f}"
        log.info(
            f"Ep {result.epoch} (Step {result.step:06d}): "
            f"Train loss {result.train_loss:.3f}, Val loss {result.val_loss:.3f}{final}"
        )

    def on_epoch_end(self, epoch: int, sample: str) -> None:
        log.info(f"Sample after epoch {epoch}: {sample.replace(chr(10), ' ')}")


def learning_rate_at(step: int, total_steps: int, config: TrainingConfig) -> float:
    """Linear warmup to ``learning_rate``, then constant or cosine decay to ``min_learning_rate``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if not config.cosine_decay:
        return config.learning_rate
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_learning_rate + (config.learning_rate - config.min_learning_rate) * cosine


def batch_loss(
    env: TrainingSetup, inputs: torch.Tensor, targets: torch.Tensor, model: nn.Module | None = None
) -> torch.Tensor:
    """Mean cross-entropy of ``model`` (``env.model`` unless given) on one batch, moved to its device."""
    inputs, targets = inputs.to(env.device), targets.to(env.device)  # (B, T) each
    with autocast(env.device, env.precision):
        return (model or env.model)(inputs, targets)  # ()


@torch.no_grad()
def validation_loss(env: TrainingSetup, windows: list[Windows]) -> float:
    """Mean cross-entropy over every scored target of ``windows``, in eval mode; one host sync."""
    total, count = torch.zeros((), device=env.device), 0
    for group in windows:
        for inputs, targets in window_batches(env.tokens.val_ids, group):
            scored = targets.shape[0] * group.scored
            inputs, targets = inputs.to(env.device), targets.to(env.device)  # (B, T) each
            with autocast(env.device, env.precision):
                total += env.model(inputs, targets, score_last=group.scored).float() * scored
            count += scored
    return total.item() / count


def train_loss_since_last_eval(history: TrainingHistory) -> float:
    """The mean batch loss of the steps after the last evaluation (a resumed run reads them from its history)."""
    last_eval = history.evals[-1].step if history.evals else -1
    losses = [loss for _, loss in itertools.takewhile(lambda s: s[0] > last_eval, reversed(history.batch_losses))]
    return sum(losses) / len(losses)


def evaluate(
    env: TrainingSetup, history: TrainingHistory, epoch: int, lr: float, tokens_per_sec: float, train_loss: float
) -> EvalResult:
    """The val loss on the fixed validation subset at the current step; at the last step also on the whole span.

    ``train_loss`` is the mean batch loss of the steps since the last evaluation (dropout on):
    free, and over more tokens than a few extra batches in eval mode would be.
    """
    env.model.eval()
    val_loss = validation_loss(env, env.validation.during)
    final = None
    if history.step == history.total_steps - 1:
        final = val_loss if env.validation.subset_is_all else validation_loss(env, env.validation.final)
    env.model.train()
    return EvalResult(
        epoch=epoch,
        step=history.step,
        tokens_seen=history.tokens_seen,
        train_loss=train_loss,
        val_loss=val_loss,
        learning_rate=lr,
        tokens_per_sec=tokens_per_sec,
        progress=(history.step + 1) / history.total_steps,
        final_val_loss=final,
    )


def greedy_sample(env: TrainingSetup) -> str:
    env.model.eval()
    context = text_to_token_ids(env.config.start_context, env.tokenizer).to(env.device)
    with autocast(env.device, env.precision):
        ids = generate(env.model, context, SAMPLE_TOKENS, env.config.model.context_length)
    env.model.train()
    return token_ids_to_text(ids, env.tokenizer)


def train_step(env: TrainingSetup, inputs: torch.Tensor, targets: torch.Tensor, lr: float) -> torch.Tensor:
    """One optimizer step; the loss stays on the device so the step causes no host sync.

    Under several processes this one trains on its shard of the batch, and DDP averages
    the gradients over all of them during ``backward``.
    """
    for group in env.optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]  # mup's hidden matrices learn at lr / width multiplier
    env.optimizer.zero_grad(set_to_none=True)
    if env.group is not None:
        inputs, targets = env.group.shard(inputs), env.group.shard(targets)  # (B / world, T) each
    loss = batch_loss(env, inputs, targets, env.train_model)
    loss.backward()
    if env.config.grad_clip > 0:
        nn.utils.clip_grad_norm_(env.model.parameters(), env.config.grad_clip)
    env.optimizer.step()
    return loss.detach()


def read_losses(
    env: TrainingSetup, history: TrainingHistory, unread: list[torch.Tensor], last_step: int, lr: float
) -> None:
    """Move the losses of the steps up to ``last_step`` into ``history``; a NaN or inf stops training.

    Under several processes each step's loss is averaged over them: the loss of the whole batch.
    """
    first_step = last_step - len(unread) + 1
    losses = torch.stack(unread)
    if env.group is not None:
        losses = env.group.mean(losses)
    for step, value in enumerate(losses.tolist(), start=first_step):
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value} at step {step} (learning_rate {lr:.3g})")
        history.batch_losses.append((step, value))
    unread.clear()


def training_batches(env: TrainingSetup, history: TrainingHistory) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """``(epoch, inputs, targets)`` for each step after ``history.step``, epoch after epoch, each epoch in the
    loader's own shuffled order. A resumed run replays its half-done epoch's order and skips the batches
    it trained on, so it sees what an uninterrupted run would have seen."""
    steps_per_epoch = len(env.train_loader)
    epoch, done = divmod(history.step + 1, steps_per_epoch)  # epochs finished, steps of the next one done
    while True:
        epoch += 1
        # Exactly the epoch's batches, never one more call: running the loader's iterator to its end makes its
        # shuffling sampler draw once more from the loader's generator, and every later epoch's order changes.
        for inputs, targets in itertools.islice(epoch_batches(env, history, done), steps_per_epoch - done):
            yield epoch, inputs, targets
        done = 0


def epoch_batches(env: TrainingSetup, history: TrainingHistory, already_done: int) -> Iterator:
    """The epoch's batches; on resuming, its data order is replayed and the ``already_done`` skipped."""
    generator = env.train_loader.generator
    if already_done == 0:
        history.loader_state_at_epoch_start = generator.get_state()
        return iter(env.train_loader)
    state_now = generator.get_state()
    generator.set_state(history.loader_state_at_epoch_start)
    batches = iter(env.train_loader)
    for _ in range(already_done):
        next(batches)
    generator.set_state(state_now)  # later draws (evaluation, next epochs) continue as they would have
    return batches


def total_steps(env: TrainingSetup) -> int:
    return env.config.training_steps(len(env.train_loader))


class CheckpointSchedule:
    """When a periodic checkpoint is due: every ``checkpoint_every`` steps, or, with 0, at an
    evaluation that improves the val loss once ``CHECKPOINT_INTERVAL_S`` have passed since the last."""

    def __init__(self, config: TrainingConfig, history: TrainingHistory) -> None:
        self.every, self.history = config.checkpoint_every, history
        self.best_val = min((e.val_loss for e in history.evals), default=math.inf)
        self.last_write = time.monotonic()

    def due_after_step(self, step: int) -> bool:
        """With ``checkpoint_every`` N: after every Nth step (the last step is the caller's)."""
        return bool(self.every) and (step + 1) % self.every == 0 and step != self.history.total_steps - 1

    def due_after_eval(self, result: EvalResult) -> bool:
        """Without: after an evaluation that beats every earlier one, once the interval has passed."""
        improved = result.val_loss < self.best_val
        self.best_val = min(self.best_val, result.val_loss)
        return (
            not self.every
            and improved
            and result.step != self.history.total_steps - 1
            and time.monotonic() - self.last_write >= CHECKPOINT_INTERVAL_S
        )

    def written(self) -> None:
        self.last_write = time.monotonic()


def train(
    env: TrainingSetup,
    callbacks: Sequence[TrainingCallback] = (),
    log_every: int = 1,
    progress_bar: bool = True,
    history: TrainingHistory | None = None,
) -> TrainingHistory:
    """Train ``env.model`` for ``config.training_steps``; evaluate every ``eval_freq`` steps and at the last.

    One loop over steps, from the step after ``history``'s (0 for a new run, so resuming is only where it
    starts); what happens at an evaluation, at an epoch's end and at a checkpoint follows from the step
    number. Between steps it checks ``gpt.interrupt.stop_if_signalled``, so under the entry point's
    ``stop_signals_remembered`` a Ctrl-C or SIGTERM swallowed anywhere still stops it at the next step.
    """
    config = env.config
    history = history if history is not None else TrainingHistory()
    history.total_steps = total_steps(env)
    last_step, steps_per_epoch = history.total_steps - 1, len(env.train_loader)
    batches = training_batches(env, history)
    schedule = CheckpointSchedule(config, history)
    unread_losses: list[torch.Tensor] = []
    at_last_eval = (history.train_seconds, history.tokens_seen)  # for the tokens per second between evaluations
    show_bar = progress_bar and sys.stderr.isatty()
    bar = tqdm(total=history.total_steps, initial=history.step + 1, desc="Training", disable=not show_bar)
    env.model.train()
    for step in range(history.step + 1, history.total_steps):
        stop_if_signalled()
        started = time.perf_counter()  # a step's time includes fetching its batch
        epoch, inputs, targets = next(batches)
        lr = learning_rate_at(step, history.total_steps, config)
        unread_losses.append(train_step(env, inputs, targets, lr))
        history.step, history.tokens_seen = step, history.tokens_seen + inputs.numel()
        reporting = step % log_every == 0
        evaluating = step % config.eval_freq == 0 or step == last_step
        ending_epoch = (step + 1) % steps_per_epoch == 0 or step == last_step
        checkpointing = schedule.due_after_step(step)
        if reporting or evaluating or checkpointing:
            read_losses(env, history, unread_losses, step, lr)  # the only host sync of a training step
        history.train_seconds += time.perf_counter() - started
        bar.update()
        if reporting:
            for callback in callbacks:
                callback.on_batch(step, history.batch_losses[-1][1])
        if evaluating:
            seconds, tokens = history.train_seconds - at_last_eval[0], history.tokens_seen - at_last_eval[1]
            at_last_eval = (history.train_seconds, history.tokens_seen)
            eval_started = time.perf_counter()
            result = evaluate(env, history, epoch, lr, tokens / max(seconds, 1e-9), train_loss_since_last_eval(history))
            history.eval_seconds += time.perf_counter() - eval_started
            history.evals.append(result)
            for callback in callbacks:
                callback.on_eval(result)
            checkpointing = schedule.due_after_eval(result) or checkpointing
        if ending_epoch:
            if progress_bar and not show_bar:
                log.info(f"Epoch {epoch}: {step % steps_per_epoch + 1}/{steps_per_epoch} steps")
            sample_started = time.perf_counter()
            sample = greedy_sample(env)
            history.eval_seconds += time.perf_counter() - sample_started
            history.samples.append((epoch, sample))
            for callback in callbacks:
                callback.on_epoch_end(epoch, sample)
        if checkpointing:  # after the epoch's sample, so that a resumed run has it too
            for callback in callbacks:
                callback.on_checkpoint(history)
            schedule.written()
    bar.close()
    return history
