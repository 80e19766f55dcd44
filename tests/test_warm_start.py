"""Warm starts: an earlier study's finished trials join a new study on a shifted space as done, without
being trained again or counted, and its best configurations can be queued to train first."""

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import SPACE, children_of, study_at, sweep, write_space

from sweeps.sampling_view import outside_trials
from sweeps.space import Param
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from sweeps.trial_states import FINISHED_STATES, WARM_START_ATTR, trials_run_here
from tracking.training import CHECKPOINT_FILE

SHIFTED = SPACE.replace("low: 1.0e-5", "low: 3.5e-5")  # the learning rate's range, narrowed


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ({"type": "float", "low": 0.1, "high": 0.3}, [0.1, 0.2, 0.3], [0.05, 0.31, "0.2", True]),
        ({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}, [0.0, 0.5, 1.0], [0.3]),
        ({"type": "int", "low": 2, "high": 8, "step": 2}, [2, 4, 8], [3, 10, 1]),
        ({"type": "categorical", "choices": [16, 32]}, [16, 32], [64]),
    ],
)
def test_a_param_holds_the_values_it_can_sample(spec, inside, outside):
    param = Param.parse("max_length", spec)
    assert all(param.holds(value) for value in inside)
    assert not any(param.holds(value) for value in outside)


def test_a_missing_or_incomparable_earlier_study_is_one_line(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--warm-start", "gone", "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Optuna storage at" in err and "pass the --warm-start-storage" in err
    storage = tmp_path / "earlier.log"
    earlier = optuna.create_study(study_name="earlier", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(storage))), direction="maximize")  # fmt: skip
    earlier.set_metric_names(["final_val_loss"])
    args = ("--warm-start", "earlier", "--warm-start-storage", str(storage), "--dry-run")
    assert sweep(space, store, verdict, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "it maximizes final_val_loss, this space minimizes final_val_loss" in err
    assert sweep(space, store, verdict, "--warm-start", "nope", "--warm-start-storage", str(storage), "--dry-run") == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert sweep(space, store, verdict, "--warm-start-top", "2") == 2
    assert "warm_start_storage and warm_start_top go with a warm_start study" in capsys.readouterr().err


@pytest.mark.slow
def test_a_warm_start_adds_the_earlier_trials_without_training_or_counting_them(tmp_path, store, verdict, capsys):
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--trials", "3") == 0
    earlier = study_at(tmp_path)
    earlier_finished = earlier.get_trials(states=FINISHED_STATES)
    fits = [t for t in earlier_finished if t.params["learning_rate"] >= 3.5e-5]
    assert fits and len(fits) < len(earlier_finished)  # the shift leaves some out
    capsys.readouterr()

    shifted = write_space(tmp_path, SHIFTED, "shifted.yaml")
    assert sweep(shifted, store, verdict, "--trials", "2", "--warm-start", "sweep-tiny") == 0
    out = capsys.readouterr().out
    assert f"Warm start from study sweep-tiny: {len(fits)} of its 3 finished trials joined as done" in out
    assert f"; {3 - len(fits)} more trained this base outside this space's ranges and inform the sampler" in out
    study = study_at(tmp_path, "sweep-shifted")
    left_out = sorted(f"sweep-tiny#{t.number}" for t in earlier_finished if t not in fits)
    assert sorted(t.source for t in outside_trials(study)) == left_out
    joined = [t for t in study.get_trials() if WARM_START_ATTR in t.user_attrs]
    assert sorted(t.user_attrs[WARM_START_ATTR] for t in joined) == sorted(f"sweep-tiny#{t.number}" for t in fits)
    assert [t.value for t in joined] == [t.value for t in fits] and all(t.intermediate_values for t in joined)
    ran = trials_run_here(study, FINISHED_STATES)
    assert len(ran) == 2 and "[2/2]" in out  # the joined trials count toward nothing
    client = MlflowClient(store)
    parent = study.user_attrs[PARENT_RUN_ATTR]
    assert {r.info.run_id for r in children_of(client, parent)} == {t.user_attrs[RUN_ID_ATTR] for t in ran}
    held = {tuple(sorted(t.params.items())) for t in joined}
    assert not held & {tuple(sorted(t.params.items())) for t in ran}  # never trained again

    # the same command resumes like any sweep: no second warm start, one more trial
    assert sweep(shifted, store, verdict, "--trials", "3", "--warm-start", "sweep-tiny") == 0
    study = study_at(tmp_path, "sweep-shifted")
    assert len([t for t in study.get_trials() if WARM_START_ATTR in t.user_attrs]) == len(joined)
    assert len(trials_run_here(study, FINISHED_STATES)) == 3
    # the earlier study's best keeps its checkpoint, whatever the new study ranks
    best_run = min(earlier_finished, key=lambda t: t.value or float("inf")).user_attrs[RUN_ID_ATTR]
    assert CHECKPOINT_FILE in [a.path for a in client.list_artifacts(best_run, CHECKPOINT_FILE.split("/")[0])]


@pytest.mark.slow
def test_a_changed_base_joins_nothing_and_queues_the_earlier_best_first(tmp_path, store, verdict, capsys):
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--trials", "3") == 0
    earlier = study_at(tmp_path)
    best_two = sorted(earlier.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)[:2]
    capsys.readouterr()
    longer = write_space(tmp_path, SPACE.replace("num_epochs: 1", "num_epochs: 2"), "longer.yaml")
    args = ("--trials", "2", "--warm-start", "sweep-tiny", "--warm-start-top", "2")
    assert sweep(longer, store, verdict, *args) == 0
    out = capsys.readouterr().out
    assert "none of its 3 finished trials fits this space (same base, values inside its ranges); 2 of its best" in out
    study = study_at(tmp_path, "sweep-longer")
    assert not [t for t in study.get_trials() if WARM_START_ATTR in t.user_attrs]
    assert [t.params for t in study.get_trials(states=FINISHED_STATES)] == [t.params for t in best_two]
