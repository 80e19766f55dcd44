"""Where a sweep's time goes: each trial's wall time split into setup, training, evaluation,
checkpoint and the rest, read back from the ``time_*_s`` metrics of its MLflow run.

    python -m benchmarks.sweep_overhead --trials 10 --data ../shared/data/the-verdict.txt

Runs the default sweep (or ``--space``) on fresh stores in a temp folder, without
confirmations, and prints a line per trial, then the mean shares of trial wall time spent
in evaluations and outside training steps and evaluations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
from mlflow import MlflowClient

from benchmarks.options import data_option
from process_setup import prepare_sweep_process, prepare_sweep_worker
from sweeps.settings import SweepSettings
from sweeps.space import DEFAULT_SPACE
from sweeps.study_runs import RUN_ID_ATTR
from sweeps.sweep import run_sweep

PHASES = ("setup", "train", "eval", "checkpoint")


@click.command()
@click.option("--trials", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--space", type=click.Path(path_type=Path), default=DEFAULT_SPACE, show_default=True)
@data_option
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def main(trials: int, space: Path, data: str, device: str, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as folder:
        settings = SweepSettings.in_folder(
            folder, space, trials, study_name="overhead", experiment="sweep-overhead", data=data, device=device,
            log_every=10, workers=workers, confirm=0,
        )  # fmt: skip
        started = time.perf_counter()
        prepare_sweep_process()
        result = run_sweep(settings, worker_setup=prepare_sweep_worker)
        wall = time.perf_counter() - started
        client = MlflowClient(settings.run.tracking_uri)
        rows = []
        for trial in result.study.get_trials():
            run_id = trial.user_attrs.get(RUN_ID_ATTR)
            metrics = client.get_run(run_id).data.metrics if run_id else {}
            if "time_total_s" in metrics:
                rows.append((trial.number, trial.state.name, metrics))
    click.echo(f"\n{'trial':>5} {'state':<8} " + " ".join(f"{p:>10}" for p in PHASES) + f" {'other':>7} {'total':>7}")
    shares, eval_shares = [], []
    for number, state, m in rows:
        parts = [m[f"time_{p}_s"] for p in PHASES]
        total = m["time_total_s"]
        other = total - sum(parts)
        shares.append(1 - (m["time_train_s"] + m["time_eval_s"]) / total)
        eval_shares.append(m["time_eval_s"] / total)
        click.echo(
            f"{number:>5} {state:<8} " + " ".join(f"{v:>10.2f}" for v in parts) + f" {other:>7.2f} {total:>7.2f}"
        )
    in_trials = sum(m["time_total_s"] for _, _, m in rows)
    click.echo(f"sweep wall time {wall:.1f} s for {len(rows)} trials, {wall - in_trials:.1f} s of it outside them")
    click.echo(f"mean share of trial wall time in evaluations: {sum(eval_shares) / len(eval_shares):.1%}")
    click.echo(f"mean share of trial wall time outside training steps and evaluations: {sum(shares) / len(shares):.1%}")


if __name__ == "__main__":
    main()
