"""The Optuna layer: search spaces, studies, and each trial trained as an MLflow child run.

The defaults here are read by the command line too, which must not import Optuna to start.
"""

DEFAULT_CONFIRM = 3  # configurations trained again with other seeds once the search is done
DEFAULT_CONFIRM_SEEDS = 2  # other seeds each: each confirmed value is a mean over three
