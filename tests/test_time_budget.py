"""A sweep sized by time: ``--time-budget`` reads durations as people write them, refuses a budget that
holds no trial, and ends the sweep within its budget with its confirmations."""

import datetime
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import SPACE, study_at, sweep, write_space

from gpt.config import resolve_config
from gpt.cost import RunFlops, parameter_count, run_flops
from gpt.errors import ConfigError
from gpt.model import GPTModel, count_parameters
from sweeps.admission import BudgetSpent
from sweeps.clock import Deadline, ProbeRates, parse_duration
from sweeps.settings import SweepSettings
from sweeps.study_runs import PARENT_RUN_ATTR
from sweeps.time_budget import FLOPS_ATTR, TimeBetweenTrials, check_time_left, overrun, timed_trials


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400)]
)
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "0", "0m", "h", "-5"])
def test_a_text_that_is_no_duration_says_what_it_takes(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("changes", [{}, {"qkv_bias": True, "n_layers": 3}, {"emb_dim": 48, "n_heads": 3}])
def test_the_parameter_count_from_the_config_is_the_built_models(changes):
    model = resolve_config("quick", None, changes).model
    built = GPTModel(model)
    assert parameter_count(model) == count_parameters(built)
    tables = built.tok_emb.weight.numel() + built.pos_emb.weight.numel()
    assert parameter_count(model, embeddings=False) == count_parameters(built) - tables


def test_a_run_reads_no_more_validation_tokens_than_the_split_holds():
    config = resolve_config("quick", None, {})
    small, large = run_flops(config, 10, 10, 500), run_flops(config, 10, 10, 10**6)
    assert small.training == large.training and 0 < small.evaluation < large.evaluation


def test_trials_are_left_unset_only_under_a_time_budget(tmp_path):
    with pytest.raises(ConfigError, match="only with a time_budget"):
        SweepSettings.in_folder(tmp_path, Path("space.yaml"), None)
    with pytest.raises(ConfigError, match="time_budget must be > 0"):
        SweepSettings.in_folder(tmp_path, Path("space.yaml"), None, time_budget=0)
    assert SweepSettings.in_folder(tmp_path, Path("space.yaml"), None, time_budget=60).trials is None


def test_a_bad_or_too_short_budget_is_one_line_before_any_trial(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--time-budget", "1x") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'1x' is not a duration" in err
    assert sweep(space, store, verdict, "--time-budget", "0.01") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--time-budget 0s is too short: one trial of this space takes about" in err
    assert sweep(space, store, verdict, "--time-budget", "0.01", "--confirm", "2") == 2
    assert "and 2 confirmation run(s) (--confirm 0 leaves them out)" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()


def timed_study(seconds_and_flops: list[tuple[float, float]]) -> optuna.Study:
    """A study of complete trials, each of ``seconds`` for ``flops`` of arithmetic."""
    study = optuna.create_study()
    start = datetime.datetime(2026, 1, 1)
    for seconds, flops in seconds_and_flops:
        study.add_trial(optuna.trial.FrozenTrial(
            number=0, trial_id=0, state=TrialState.COMPLETE, value=6.0, values=None, params={}, distributions={},
            datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=seconds),
            user_attrs={FLOPS_ATTR: flops}, system_attrs={}, intermediate_values={},
        ))  # fmt: skip
    return study


def test_the_last_trial_admitted_leaves_room_for_running_as_far_past_its_estimate_as_the_studys_trials_did():
    # 2 flops in 6 s: 3 s a flop; the 1-flop trials took 1 s and 5 s, so one ran 5/3 of its estimate
    study = timed_study([(1.0, 1.0), (5.0, 1.0)])
    assert overrun(timed_trials(study)) == pytest.approx(5 / 3)
    assert overrun(timed_trials(timed_study([(2.0, 1.0)]))) == 1.0 and overrun([]) == 1.0
    one_flop = RunFlops(training=1.0, evaluation=0.0)
    probe = ProbeRates(1.0, 1.0)

    def check(left_s: float, between_s: float) -> None:  # a 3 s estimate, 5 s at most
        check_time_left(study, one_flop, Deadline(time.time() + left_s, 1000, probe), between_s, 0, 1)

    check(left_s=6, between_s=0.0)
    with pytest.raises(BudgetSpent, match=r"holds no trial of about 3s \(up to 5s, as this study's trials ran\)"):
        check(left_s=4, between_s=0.0)
    # the time between trials comes after the last one too, before the confirmations or the sweep's end
    with pytest.raises(BudgetSpent, match=r"\(up to 5s, as this study's trials ran\), the 2s between trials"):
        check(left_s=6, between_s=2.0)


def test_the_time_between_trials_is_the_longest_gap_from_one_trials_end_to_the_next_ones_start():
    between = TimeBetweenTrials()
    between.trial_starts(time.perf_counter())  # the first trial follows none
    assert between.longest_s == 0.0
    between.trial_ended()
    ended = between.ended_at
    between.trial_starts(ended + 2.0)
    between.trial_ended()
    between.trial_starts(between.ended_at + 0.5)
    assert between.longest_s == pytest.approx(2.0)


@pytest.mark.slow
@pytest.mark.serial  # it times a sweep: alone, its trials take as long as its estimates learn
def test_a_time_budget_ends_the_sweep_on_time_with_its_confirmations(tmp_path, store, verdict, capsys):
    budget = 60  # a trial takes about 1 s; the report and registration after the confirmation about 2 s
    started = time.time()
    code = sweep(write_space(tmp_path, SPACE), store, verdict, "--time-budget", str(budget), "--confirm", "1",
                 "--confirm-seeds", "1")  # fmt: skip
    took = time.time() - started
    out = capsys.readouterr().out
    assert code == 0
    assert took <= 1.05 * budget, out
    study = study_at(tmp_path)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) >= 2 and all(FLOPS_ATTR in t.user_attrs for t in finished)
    # no trial count: the budget alone ended it, after the last trial and before the confirmation
    assert "[1] trial 0 COMPLETE" in out and "of the 1m00s budget left" in out
    assert "not run: the time budget is spent" in out
    assert out.index("not run: the time budget is spent") < out.index("[confirm 1/1]")
    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {run.info.status for run in runs} == {"FINISHED"}
    parent = client.get_run(study.user_attrs[PARENT_RUN_ATTR])
    assert "as many trials as a 1m00s budget holds" in parent.data.tags["mlflow.note.content"]
