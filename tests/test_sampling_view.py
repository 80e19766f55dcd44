"""A warm start's earlier trials outside this space's ranges inform the sampler through a widened view of the
study, and never become points of it (real Optuna studies in a journal file, no training)."""

import math
import statistics
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.sampling_view import OutsideTrial, moved_inside, outside_trials, sampling_view, save_outside_trials
from sweeps.space import Param, SearchSpace
from sweeps.storage import open_storage
from sweeps.study import open_study

SPACE = """base:
  mode: quick
  overrides: {emb_dim: 16, n_heads: 2}
params:
  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
  n_layers: {type: int, low: 1, high: 2}
sampler: tpe-multivariate
pruner: hyperband
seed: 3
"""


@pytest.mark.parametrize(
    ("spec", "value", "inside"),
    [
        ({"type": "float", "low": 1e-3, "high": 1e-1, "log": True}, 1e-4, 1e-3),
        ({"type": "float", "low": 0.2, "high": 0.4, "step": 0.1}, 0.6, 0.4),
        ({"type": "int", "low": 4, "high": 8, "step": 2}, 6, 6),
        ({"type": "categorical", "choices": [32, 64]}, 64, 64),
        ({"type": "categorical", "choices": [32, 64]}, 128, None),
    ],
)
def test_an_outside_value_moves_to_the_nearer_end_of_the_range(spec, value, inside):
    assert moved_inside(Param.parse("max_length", spec), value) == inside


def load_space(folder: Path) -> SearchSpace:
    (folder / "space.yaml").write_text(SPACE)
    return SearchSpace.load(folder / "space.yaml")


def outside(lr: float, value: float, number: int) -> OutsideTrial:
    return OutsideTrial({"learning_rate": lr, "n_layers": 1}, TrialState.COMPLETE, (value,), {}, f"earlier#{number}")


def run_trials(
    study: optuna.Study, space: SearchSpace, n: int, value: Callable[[float], float] = lambda lr: 1.0
) -> list[float]:
    drawn = []
    for _ in range(n):
        trial = study.ask()
        sampled = space.sample(trial)
        trial.report(value(sampled["learning_rate"]), step=1)
        trial.should_prune()  # hyperband makes its brackets
        study.tell(trial, value(sampled["learning_rate"]))
        drawn.append(sampled["learning_rate"])
    return drawn


def test_the_view_holds_every_trial_and_the_outside_ones_in_widened_ranges(tmp_path):
    space = load_space(tmp_path)
    study, _ = open_study(space, "s", open_storage(str(tmp_path / "journal.log")))
    run_trials(study, space, 12)
    trial = study.ask()
    view, current = sampling_view(study, study.trials[-1], space, [outside(1e-4, 0.5, 0), outside(2e-4, 0.7, 1)])
    assert len(view.get_trials(states=(TrialState.COMPLETE,))) == 14  # all brackets' trials, and the outside two
    assert current.state == TrialState.RUNNING and current.number == 14 and not current.params
    assert sorted(t.params["learning_rate"] for t in view.get_trials(states=(TrialState.COMPLETE,)))[:3] == [
        1e-3,  # the two outside trials, at the range's low end
        1e-3,
        min(t.params["learning_rate"] for t in study.get_trials(states=(TrialState.COMPLETE,))),
    ]
    study.tell(trial, state=TrialState.FAIL)


def test_outside_trials_reach_the_sampler_and_no_draw_leaves_the_range(tmp_path):
    """Inside the range a higher learning rate scores better (1 at its top, 3 at its bottom), but two earlier
    trials below its low end scored better still. Told of those, TPE draws toward the low end; without them,
    toward the top."""
    space = load_space(tmp_path)
    storage = open_storage(str(tmp_path / "journal.log"))

    def score(lr: float) -> float:
        return -math.log10(lr)

    draws = {}
    for name, told in (("cold", []), ("warm", [outside(3e-4, 0.0, 0), outside(5e-4, 0.1, 1)])):
        study, _ = open_study(space, name, storage)
        save_outside_trials(study, told)
        study, _ = open_study(space, name, storage)  # as a worker opens it after the warm start
        assert outside_trials(study) == told
        run_trials(study, space, 10, score)  # TPE's startup: random draws
        draws[name] = run_trials(study, space, 10, score)
    assert all(1e-3 <= lr <= 1e-1 for lr in draws["warm"])
    middle = {name: statistics.median(lrs) for name, lrs in draws.items()}
    assert middle["warm"] < middle["cold"] / 5, middle
