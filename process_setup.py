"""Process-wide set-up, in one place: log levels and where the packages' logs go, MLflow's and Optuna's
chatter, the allocator, TF32, matplotlib's backend, a sweep worker's GPU, threads and process group, a
benchmark process's cores, and how a process ends.

The packages (``gpt``, ``tracking``, ``sweeps``) never change anything process-wide; the entry points do,
by calling these: ``runner.py``, each spawned sweep worker (``prepare_sweep_worker``) and the benchmarks.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeps.workers import WorkerPlacement

log = logging.getLogger("gpt-runner")

QUIET_MLFLOW_ENV = {
    # With a tracking server MLflow prints two links per run ended, a pair per trial; the runner
    # prints its own summary instead.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # A bar per downloaded checkpoint is noise above the line that matters.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


PACKAGE_LOGGERS = ("gpt", "tracking", "sweeps")


class ConsoleLines(logging.Handler):
    """Each record as its bare message: information to stdout, warnings and errors to stderr, written
    around a progress bar and flushed at once (a pipe reader waits for whole lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:  # a closed stream: logging's own report, never the caller's crash
            self.handleError(record)


def show_package_logs(level: int = logging.INFO) -> None:
    """What ``gpt``, ``tracking`` and ``sweeps`` log, on the terminal: the console a person sees. The
    packages only log; this entry-point choice (``runner.py``, each sweep worker) makes it visible."""
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(handler, ConsoleLines) for handler in logger.handlers):
            logger.addHandler(ConsoleLines())
    root = logging.getLogger()
    if not any(isinstance(handler, ConsoleLines) for handler in root.handlers):
        # Other libraries' warnings, as Python shows them when nothing is set up (logging.lastResort). A
        # handler on the root also turns a library's import-time logging.basicConfig into a no-op:
        # mlflow.pytorch's made every package line after it print twice.
        others = ConsoleLines(logging.WARNING)
        others.addFilter(lambda record: record.name.partition(".")[0] not in PACKAGE_LOGGERS)
        root.addHandler(others)


def quiet_mlflow() -> None:
    """MLflow announces its database migrations on every new store and the start and end of each run's
    system metrics, logs each database error it then raises, and warns that a pickled model runs code when
    loaded (ours is this project's own GPTModel): none of it is news to a user. A user's own setting of
    those variables wins."""
    for name, value in QUIET_MLFLOW_ENV.items():
        os.environ.setdefault(name, value)  # spawned workers inherit them
    for name in ("alembic.runtime.migration", "mlflow.system_metrics"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Its database errors (a full disk) are logged, traceback and all, and raised: the runner says the raised one.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)


def quiet_optuna() -> None:
    """Each trial gets our own one-line summary; Optuna's warnings would add a traceback per failed trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the kernel.

    A training step allocates and frees the same large logits tensors every step; by default glibc
    maps each one fresh and the kernel zeroes new pages each time (the plain implementation spent
    ~40% of its CPU time in the kernel). Returns whether it applied.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def allow_tf32() -> None:
    """Let fp32 matmuls and convolutions on CUDA use TF32 tensor cores (no effect on a CPU)."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def exit_without_collecting() -> None:
    """Let this process end without the interpreter's full garbage collections over every object
    torch, mlflow, optuna and matplotlib made: at exit, once the atexit handlers registered after this
    one have run, the objects alive are moved to the collector's permanent generation (``gc.freeze``),
    which the collections of the interpreter's teardown skip. Handlers, flushes and finalizers run as
    before; only garbage in reference cycles is left, for the OS to free with the process. Each
    ``runner.py`` process and sweep worker ends that much sooner (``python -m benchmarks.process_exit``).
    """
    atexit.register(gc.freeze)


def prepare_training_process() -> None:
    """The switches the fast training path relies on (the allocator, TF32), and the packages' logs shown."""
    show_package_logs()
    if keep_freed_memory():
        log.info("glibc keeps freed memory for reuse (mallopt)")
    else:
        log.info("freed memory goes back to the system: this is not glibc")
    allow_tf32()


def prepare_sweep_process() -> None:
    """What every sweep process needs first: plots drawn to files, quiet libraries, the training switches."""
    import matplotlib

    matplotlib.use("Agg")  # the report's plots are files, never windows
    quiet_mlflow()
    quiet_optuna()
    prepare_training_process()


def keep_to_cores(cores: set[int]) -> None:
    """Run this process (and the processes it starts) on ``cores`` alone, a thread on each: two sides of a
    benchmark that run at once then share the machine evenly instead of contending for every core."""
    import torch

    os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))


def prepare_sweep_worker(placement: WorkerPlacement) -> None:
    """First thing in each spawned sweep worker: its own process group (signals reach it from the sweep's
    main process only, so every stop takes one path), its GPU before CUDA is first touched, its share
    of the cores, then what every sweep process needs."""
    if hasattr(os, "setpgrp"):  # POSIX
        os.setpgrp()
    if placement.gpu is not None:  # each trial logs it as the cuda_visible_devices param
        os.environ["CUDA_VISIBLE_DEVICES"] = placement.gpu
    import torch

    torch.set_num_threads(placement.threads)
    exit_without_collecting()
    prepare_sweep_process()
