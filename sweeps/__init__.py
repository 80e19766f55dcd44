"""The Optuna layer: search spaces, studies, and each trial trained as an MLflow child run.

The defaults and choices here are read by the command line too, which must not import Optuna to start.
"""

DEFAULT_TRIALS = 30  # finished trials a study should hold
DEFAULT_KEEP_CHECKPOINTS = 1  # trials whose checkpoints stay, the best first
DEFAULT_CONFIRM = 3  # configurations trained again with other seeds once the search is done
DEFAULT_CONFIRM_SEEDS = 2  # other seeds each: each confirmed value is a mean over three
DEFAULT_HEARTBEAT_S = 20  # seconds between a worker's heartbeats
DEFAULT_STORAGE_RETRY_S = 300  # seconds a sweep waits for a database storage that went away
JOURNAL_NAME = "optuna-journal.log"  # the default storage: a journal file beside the MLflow SQLite store
GRACE_BEATS = 3  # a trial whose worker missed this many beats is stale: failed and run again
SAMPLERS = ("tpe", "tpe-multivariate", "gp", "random", "grid")
PRUNERS = ("median", "hyperband", "pareto", "none")
