"""Sampling without repeats and the trial count, on real Optuna studies in a journal file (no training)."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.admission import SpaceExhausted, StudyFull, check_room
from sweeps.sampling import FAIL_REASON_ATTR
from sweeps.space import SearchSpace
from sweeps.storage import open_storage
from sweeps.study import open_study

BASE = "base:\n  mode: quick\n  overrides: {emb_dim: 16, n_heads: 2}\n"
DISCRETE = (
    BASE
    + """
params:
  n_layers: {type: int, low: 1, high: 4}
  max_length: {type: categorical, choices: [16, 32, 64, 128]}
  n_heads: {type: categorical, choices: [1, 2, 4, 8, 16]}
seed: 11
"""
)


def load_space(folder: Path, text: str, **options) -> SearchSpace:
    path = folder / "space.yaml"
    path.write_text(text)
    return SearchSpace.load(path).with_options(options.get("sampler"), options.get("pruner"), options.get("seed"))


def machine(folder: Path, space: SearchSpace, name: str = "s") -> optuna.Study:
    """One process's view of the study: its own storage object and sampler, as a second machine has."""
    study, _ = open_study(space, name, open_storage(str(folder / "journal.log")))
    return study


def run_trial(study: optuna.Study, space: SearchSpace, value: float) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    space.sample(trial)
    return study.tell(trial, value)


def point(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


@pytest.mark.parametrize("sampler", ["tpe", "tpe-multivariate", "gp", "random", "grid"])
def test_two_machines_with_one_seed_never_draw_the_same_point(tmp_path, sampler):
    space = load_space(tmp_path, DISCRETE, sampler=sampler)  # 80 points; TPE and GP model them after 10 trials
    machines = [machine(tmp_path, space), machine(tmp_path, space)]
    drawn = [point(run_trial(machines[n % 2], space, value=(n * 7) % 5)) for n in range(40)]
    assert len(set(drawn)) == 40


@pytest.mark.parametrize("sampler", ["tpe-multivariate", "random"])
def test_under_hyperband_no_draw_repeats_a_point_of_another_bracket(tmp_path, sampler):
    """``HyperbandPruner`` shows a sampler only the trials of its trial's bracket (one of three here, once it
    has pruned: the sweep asks it at every report)."""
    space = load_space(tmp_path, DISCRETE, sampler=sampler, pruner="hyperband")
    study = machine(tmp_path, space)
    drawn = []
    for n in range(60):
        trial = study.ask()
        space.sample(trial)
        trial.report((n * 7) % 5, step=1)
        trial.should_prune()
        drawn.append(point(study.tell(trial, (n * 7) % 5)))
    assert len(set(drawn)) == 60


def test_the_same_command_from_scratch_draws_the_same_sequence(tmp_path):
    space = load_space(tmp_path, DISCRETE)
    first, second = machine(tmp_path, space, "first"), machine(tmp_path, space, "second")
    assert [point(run_trial(first, space, n % 3)) for n in range(15)] == [
        point(run_trial(second, space, n % 3)) for n in range(15)
    ]


def test_a_used_up_space_and_a_full_study_refuse_the_next_trial(tmp_path):
    space = load_space(tmp_path, BASE + "params:\n  n_layers: {type: int, low: 1, high: 3}\n")
    study = machine(tmp_path, space)
    for _ in range(2):
        run_trial(study, space, 1.0)
    running = study.ask()
    check_room(study, running, trials=3, space=space)  # the third point is free: it may run
    space.sample(running)
    with pytest.raises(StudyFull, match="already holds 3 trials"):
        check_room(study, study.ask(), trials=3, space=space)
    with pytest.raises(SpaceExhausted, match="each of its 3 points was tried"):
        check_room(study, study.ask(), trials=10, space=space)


def other_layers(trial) -> int:
    return 3 - trial.params["n_layers"]  # the other point of a 1..2 space


def test_an_interrupted_trial_frees_its_point_and_one_that_failed_in_training_does_not(tmp_path):
    space = load_space(tmp_path, BASE + "params:\n  n_layers: {type: int, low: 1, high: 2}\n")
    study = machine(tmp_path, space)
    interrupted = study.ask()
    space.sample(interrupted)
    study.tell(interrupted, state=TrialState.FAIL)  # Ctrl-C: no fail reason, the point was never trained
    study.enqueue_trial({"n_layers": other_layers(interrupted)})
    run_trial(study, space, 1.0)
    assert point(run_trial(study, space, 1.0)) == point(interrupted)  # drawn again: the only free point
    with pytest.raises(SpaceExhausted):
        check_room(study, study.ask(), trials=5, space=space)

    other = machine(tmp_path, space, "nan")
    nan = other.ask()
    space.sample(nan)
    nan.set_user_attr(FAIL_REASON_ATTR, "NonFiniteLossError: loss became nan")
    other.tell(nan, state=TrialState.FAIL)
    assert run_trial(other, space, 1.0).params["n_layers"] == other_layers(nan)  # the NaN point is not redrawn
    with pytest.raises(SpaceExhausted):
        check_room(other, other.ask(), trials=5, space=space)
