import contextlib
import itertools
import math
import signal
import sys

import pytest
import torch

from gpt.config import PRESETS
from gpt.environment import prepare_environment
from gpt.errors import ConfigError, NonFiniteLossError
from gpt.interrupt import stop_signals_remembered
from gpt.training import TrainingCallback, TrainingHistory, learning_rate_at, train

TINY = {"vocab_size": 257, "emb_dim": 32, "n_heads": 2, "n_layers": 1, "max_length": 32, "batch_size": 16}


@pytest.fixture
def tiny_env(verdict, tiny_tokenizer):
    def make(**changes):
        config = PRESETS["quick"].update(**{**TINY, "eval_freq": 5, **changes})
        return prepare_environment(config, str(verdict), "cpu", tokenizer=tiny_tokenizer)

    return make


class Recorder(TrainingCallback):
    def __init__(self):
        self.batches, self.evals, self.epochs = [], [], []

    def on_batch(self, step, loss):
        self.batches.append(step)

    def on_eval(self, result):
        self.evals.append(result)

    def on_epoch_end(self, epoch, sample):
        self.epochs.append((epoch, sample))


def test_loss_falls_and_callbacks_hear_every_event(tiny_env):
    env = tiny_env(num_epochs=2, learning_rate=3e-3)
    recorder = Recorder()
    history = train(env, [recorder], log_every=3, progress_bar=False)
    steps = history.total_steps
    assert steps == 2 * len(env.train_loader) and history.step == steps - 1
    assert recorder.batches == list(range(0, steps, 3))
    assert [e.step for e in recorder.evals] == sorted({*range(0, steps, 5), steps - 1})
    assert recorder.evals[-1].val_loss < recorder.evals[0].val_loss - 1.0
    assert recorder.evals[-1].tokens_seen == steps * 16 * 32
    assert recorder.evals[-1].progress == 1.0
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]
    assert recorder.epochs[0][1].startswith(env.config.start_context)


def test_same_seed_same_losses_other_seed_other_losses(tiny_env):
    def losses(seed):
        return [loss for _, loss in train(tiny_env(seed=seed), progress_bar=False).batch_losses]

    assert losses(5) == losses(5)
    assert losses(5) != losses(6)


def test_nan_loss_stops_training_with_a_clear_error(tiny_env):
    env = tiny_env()
    with torch.no_grad():
        env.model.out_head.weight.fill_(math.nan)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 0"):
        train(env, progress_bar=False)


def test_warmup_then_cosine_decay():
    config = PRESETS["quick"].update(learning_rate=1.0, warmup_steps=4, cosine_decay=True, min_learning_rate=0.1)
    rates = [learning_rate_at(step, 20, config) for step in range(20)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(rates[4:])) and rates[-1] > 0.1
    assert learning_rate_at(7, 20, PRESETS["quick"]) == PRESETS["quick"].learning_rate


def test_gradient_clipping_bounds_the_gradient_norm(tiny_env):
    class GradNorms(TrainingCallback):
        def __init__(self, model):
            self.model, self.norms = model, []

        def on_batch(self, step, loss):  # gradients of the step just taken are still in place
            self.norms.append(torch.norm(torch.stack([p.grad.norm() for p in self.model.parameters()])).item())

    def norms(**changes):
        env = tiny_env(num_epochs=1, **changes)
        recorder = GradNorms(env.model)
        train(env, [recorder], progress_bar=False)
        return recorder.norms

    assert max(norms(grad_clip=0.5)) <= 0.5 + 1e-4
    assert max(norms()) > 0.5


def test_vocab_smaller_than_the_tokenizer_is_refused(verdict):
    with pytest.raises(ConfigError, match=r"vocab_size \(100\) is smaller than the tokenizer's vocabulary \(50257\)"):
        prepare_environment(PRESETS["quick"].update(vocab_size=100), str(verdict), "cpu")


def test_missing_device_is_an_error():
    from gpt.device import choose_device

    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda, mps"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            choose_device("cuda")
    device, reason = choose_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda" and reason.startswith("auto: CUDA is available")
    elif not torch.backends.mps.is_available():
        assert device.type == "cpu" and reason == "auto: no CUDA or MPS device found"


def test_a_swallowed_ctrl_c_still_stops_training_at_the_next_step(tiny_env):
    class SwallowedCtrlC(TrainingCallback):
        def on_batch(self, step, loss):
            if step == 2:
                # As when Python drops a KeyboardInterrupt raised in a garbage-collector callback.
                with contextlib.suppress(KeyboardInterrupt):
                    signal.raise_signal(signal.SIGINT)

    env = tiny_env()
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    with pytest.raises(KeyboardInterrupt), stop_signals_remembered():  # as runner.py wraps every command
        train(env, [SwallowedCtrlC()], progress_bar=False, history=(history := TrainingHistory()))
    assert history.step == 2
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_training_alone_leaves_the_ctrl_c_handler_and_the_unraisable_hook_alone(tiny_env):
    class Watch(TrainingCallback):
        def on_batch(self, step, loss):
            seen.add((signal.getsignal(signal.SIGINT), sys.unraisablehook))

    seen = set()
    train(tiny_env(), [Watch()], progress_bar=False)
    assert seen == {(signal.getsignal(signal.SIGINT), sys.unraisablehook)}


def test_a_step_budget_spans_epochs_and_ends_with_an_evaluation(tiny_env):
    per_epoch = len(tiny_env().train_loader)
    budget = per_epoch + 3  # one epoch and a bit: the second stops early
    recorder = Recorder()
    history = train(tiny_env(num_epochs=10, max_steps=budget), [recorder], progress_bar=False)
    assert history.total_steps == budget and history.step == budget - 1
    assert [step for step, _ in history.batch_losses] == list(range(budget))
    assert recorder.evals[-1].step == budget - 1 and recorder.evals[-1].progress == 1.0
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]  # the cut epoch still gets its sample


def test_a_token_budget_rounds_up_to_whole_batches_and_the_tighter_budget_wins(tiny_env):
    tokens_per_step = 16 * 32
    env = tiny_env(max_tokens=3 * tokens_per_step + 1)
    assert train(env, progress_bar=False).tokens_seen == 4 * tokens_per_step
    assert tiny_env(max_tokens=10 * tokens_per_step, max_steps=2).config.training_steps(100) == 2
    assert tiny_env(num_epochs=3).config.training_steps(7) == 21  # no budget: the epochs
    with pytest.raises(ConfigError, match="max_tokens must be >= 0"):
        tiny_env(max_tokens=-1)


class CheckpointRecorder(TrainingCallback):
    def __init__(self):
        self.at = []  # (step, steps whose losses the history holds, samples so far)

    def on_checkpoint(self, history):
        self.at.append((history.step, len(history.batch_losses), len(history.samples)))


def test_checkpoint_every_n_steps_sees_every_loss_so_far(tiny_env):
    env = tiny_env(num_epochs=2, checkpoint_every=4)
    per_epoch = len(env.train_loader)
    recorder = CheckpointRecorder()
    train(env, [recorder], log_every=100, progress_bar=False)
    last = 2 * per_epoch - 1
    due = [step for step in range(last) if (step + 1) % 4 == 0]  # the last step is left to the caller
    assert [step for step, _, _ in recorder.at] == due
    assert all(losses == step + 1 for step, losses, _ in recorder.at)
    # A checkpoint due at an epoch's last step waits for that epoch's sample.
    assert all(samples == (step + 1) // per_epoch for step, _, samples in recorder.at)


def test_by_default_improving_evaluations_checkpoint_at_most_every_interval(tiny_env, monkeypatch):
    recorder = Recorder()
    checkpoints = CheckpointRecorder()
    train(tiny_env(num_epochs=2, learning_rate=3e-3), [recorder, checkpoints], progress_bar=False)
    assert checkpoints.at == []  # a run shorter than the interval writes only its final checkpoint

    monkeypatch.setattr("gpt.training.CHECKPOINT_INTERVAL_S", 0.0)
    recorder, checkpoints = Recorder(), CheckpointRecorder()
    env = tiny_env(num_epochs=2, learning_rate=3e-3)
    train(env, [recorder, checkpoints], progress_bar=False)
    best, improving = math.inf, []
    for result in recorder.evals[:-1]:
        if result.val_loss < best:
            improving.append(result.step)
        best = min(best, result.val_loss)
    assert improving and [step for step, _, _ in checkpoints.at] == improving
