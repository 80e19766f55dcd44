"""The training callback that sends a run's losses to MLflow, batched."""

from __future__ import annotations

import time

from mlflow import MlflowClient
from mlflow.entities import Metric

from gpt.training import EvalResult, TrainingCallback, TrainingHistory
from tracking.runs import metrics_at


class MlflowReporter(TrainingCallback):
    """Batches metrics: batch losses and evaluations wait up to a few seconds and go in one call.

    At most one store write every ``MAX_WAIT_S`` seconds (plus one at each epoch's end) instead
    of one per step keeps tracking to a small fraction of training time, while the UI still
    follows a long run live; ``flush`` sends whatever is still waiting. (MLflow's
    asynchronous logging was measured slower here: ending a run that used it waits ~0.4 s
    for its queue to shut down, more than the writes it moves off the training thread.)
    """

    MAX_WAIT_S = 5.0
    MAX_PENDING = 1000  # MLflow's own limit per log_batch call

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.samples: list[str] = []
        self.pending: list[Metric] = []
        self.last_flush = time.monotonic()

    def flush(self) -> None:
        for start in range(0, len(self.pending), self.MAX_PENDING):
            self.client.log_batch(self.run_id, metrics=self.pending[start : start + self.MAX_PENDING])
        self.pending = []
        self.last_flush = time.monotonic()

    def flush_if_due(self) -> None:
        if len(self.pending) >= self.MAX_PENDING or time.monotonic() - self.last_flush > self.MAX_WAIT_S:
            self.flush()

    def on_batch(self, step: int, loss: float) -> None:
        self.pending += metrics_at(step, {"batch_loss": loss})
        self.flush_if_due()

    def on_eval(self, result: EvalResult) -> None:
        self.pending += metrics_at(
            result.step,
            {
                "train_loss": result.train_loss,
                "val_loss": result.val_loss,
                "tokens_seen": result.tokens_seen,
                "learning_rate": result.learning_rate,
                "tokens_per_sec": result.tokens_per_sec,
                **({} if result.final_val_loss is None else {"final_val_loss": result.final_val_loss}),
            },
        )
        self.flush_if_due()

    def on_checkpoint(self, history: TrainingHistory) -> None:
        self.flush()  # the store then holds every loss the checkpoint does

    def on_epoch_end(self, epoch: int, sample: str) -> None:
        self.flush()
        self.samples.append(f"--- epoch {epoch} ---\n{sample}\n")
        self.client.log_text(self.run_id, "\n".join(self.samples), "samples.txt")
