"""Worker processes: each joins the study and runs trials until it holds the trials asked for."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import optuna
import torch

from gpt.disk_space import OutOfSpace
from gpt.environment import LoadedText, load_tokens
from gpt.errors import MachineFault, UserError
from gpt.interrupt import exit_status, received_signal, stop_signals_remembered
from sweeps.admission import TrialNotRun
from sweeps.callbacks import StopAtTrials, TrialBookkeeper
from sweeps.objective import TRIAL_FAILURES, TrialObjective
from sweeps.optuna_internals import experimental_features
from sweeps.recovery import stale_trial_callback
from sweeps.settings import SweepSettings
from sweeps.storage import open_storage
from sweeps.storage_outage import outages_surfaced
from sweeps.study import open_study
from sweeps.study_runs import parent_run_of
from sweeps.trial_states import COUNTED_STATES, trials_run_here
from tracking.store import connect, experiment_id

log = logging.getLogger(__name__)

ORPHAN_CHECK_S = 1.0


def started_trials(study: optuna.Study) -> int:
    """Finished and running trials: what a worker checks before starting one more."""
    return len(trials_run_here(study, COUNTED_STATES))


def run_worker(settings: SweepSettings, text: LoadedText | None = None) -> None:
    """Join the study and run trials until finished and running ones reach ``settings.trials``, or the time
    budget is spent.

    ``text`` is the corpus this process has already tokenized, if any.
    """
    space = settings.load_space()
    options = settings.run
    client = connect(options.tracking_uri)
    text = text or load_tokens(options.data, val_data=options.val_data, text_field=options.text_field)
    on_stale = stale_trial_callback(client.tracking_uri)
    storage = open_storage(settings.storage, settings.heartbeat_s, on_stale, settings.storage_retry_s)
    study, _ = open_study(space, settings.study_name, storage, settings.parallel)
    with experimental_features():
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial must not hold a place in the count
    if settings.trials is not None and started_trials(study) >= settings.trials:
        return
    parent_run_id = parent_run_of(study, client)
    # Each trial's loss plot is drawn and uploaded on this thread while the next trial trains.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loss-plots") as plotter:
        experiment = experiment_id(client, options.experiment)
        objective = TrialObjective(settings, space, client, experiment, parent_run_id, text, plotter)
        with outages_surfaced():
            counted = settings.trials is not None
            study.optimize(
                objective,
                # failed trials are replaced; this bounds them when every trial fails (a budget bounds its own)
                n_trials=2 * settings.trials if counted else None,
                timeout=settings.timeout,
                catch=(*TRIAL_FAILURES, TrialNotRun),
                callbacks=[
                    *([StopAtTrials(settings.trials)] if counted else []),
                    TrialBookkeeper(client, parent_run_id, space.metric, settings),
                ],
            )


@dataclass(frozen=True)
class WorkerPlacement:
    """Where a spawned worker runs: its GPU (None: the workers share what they see) and its share of the cores.

    The worker's set-up function applies it (``process_setup.prepare_sweep_worker``); this package
    changes nothing process-wide itself.
    """

    index: int
    gpu: str | None
    threads: int


def gpu_of_worker(index: int, device: str) -> str | None:
    """The GPU a worker gets on a machine with several: its own, round robin over the visible ones.

    None (the workers share what they see) on the CPU, with one GPU, or when another device is asked for.
    """
    if device not in ("auto", "cuda") or torch.cuda.device_count() < 2:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(n) for n in range(torch.cuda.device_count())]
    return gpus[index % len(gpus)]


def stop_when_orphaned(parent_pid: int) -> None:
    """If the sweep's main process dies without a word (SIGKILL), stop this worker as if it got SIGTERM."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(ORPHAN_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _worker_process(
    settings: SweepSettings, placement: WorkerPlacement, setup: Callable[[WorkerPlacement], None], parent_pid: int
) -> None:
    setup(placement)
    with stop_signals_remembered():
        stop_when_orphaned(parent_pid)
        try:
            run_worker(settings)
        except KeyboardInterrupt:
            raise SystemExit(exit_status()) from None
        except UserError as exc:
            log.error(f"Error: worker {placement.index}: {exc}")
            raise SystemExit(2) from None
        except OutOfSpace as exc:  # a fault of the machine: status 1, as the command line gives it
            log.error(f"Error: worker {placement.index}: {exc}")
            raise SystemExit(1) from None


def run_workers(settings: SweepSettings, text: LoadedText, setup: Callable[[WorkerPlacement], None]) -> None:
    """Run the trials here, or in ``workers`` spawned processes that split the cores.

    ``setup`` is run first in each spawned process, like ``multiprocessing.Pool``'s initializer: it
    applies the worker's placement (GPU, threads) and the caller's process-wide settings.
    A Ctrl-C or SIGTERM here is passed on to the workers, which close their trials and stop.
    """
    if settings.workers == 1:
        run_worker(settings, text)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // settings.workers)
    context = multiprocessing.get_context("spawn")  # never fork a process that has torch's threads running
    placements = [WorkerPlacement(index, gpu_of_worker(index, settings.run.device), threads)
                  for index in range(settings.workers)]  # fmt: skip
    processes = [
        context.Process(
            target=_worker_process,
            args=(settings, placement, setup, os.getpid()),
            name=f"sweep-worker-{placement.index}",
        )
        for placement in placements
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, received_signal() or signal.SIGINT)
        for process in processes:  # each worker closes its own trial
            process.join()
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        message = f"{', '.join(failed)} stopped with an error; see the lines above"
        statuses = {p.exitcode for p in processes if p.exitcode not in (0, None)}
        raise MachineFault(message) if statuses == {1} else UserError(message)
