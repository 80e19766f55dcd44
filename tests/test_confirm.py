"""Sweeps that rank models: one validation span for every trial, a validation text of its own,
confirmations over seeds deciding the best, and a progress line per trial."""

import re

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import FloatDistribution
from support import TINY_BASE, children_of, study_at, sweep, write_space

import runner
from gpt.corpus import load_source
from gpt.data import gpt2_encoding, token_ids
from sweeps import JOURNAL_NAME
from sweeps.ranking import best_result, confirmation_key, final_order
from sweeps.report import describe_best, leaderboard
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR

GRID = (
    TINY_BASE
    + """
params:
  max_length: {type: categorical, choices: [16, 32]}
  learning_rate: {type: categorical, choices: [1.0e-3, 3.0e-3]}
sampler: grid
pruner: none
seed: 5
"""
)
LINE = re.compile(
    r"^\[(\d)/3\] trial (\d) COMPLETE: final_val_loss \d+\.\d{4}; best \d+\.\d{4} \(trial \d\); \d+\.\ds; "
    r"max_length=(16|32), learning_rate=0\.00[13]; ~\S+ left$"
)

pytestmark = pytest.mark.slow  # end to end: sweeps, servers or several processes


def test_confirmations_run_resume_and_decide_the_best_and_the_registered_model(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, GRID)
    assert sweep(space, store, verdict, "--trials", "3", "--confirm", "2", "--confirm-seeds", "1") == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("[") and "trial" in line]
    progress = [LINE.match(line) for line in lines if not line.startswith("[confirm")]
    assert all(progress) and [int(m.group(1)) for m in progress] == [1, 2, 3], lines
    assert "Successfully registered model" not in captured.out + captured.err
    assert len([line for line in lines if line.startswith("[confirm ")]) == 2

    study, client = study_at(tmp_path), MlflowClient(store)
    parent_id = study.user_attrs[PARENT_RUN_ATTR]
    runs = children_of(client, parent_id)
    trial_runs = [r for r in runs if "trial_number" in r.data.params]
    confirmations = [r for r in runs if "confirms_trial" in r.data.tags]
    # Trials of both context lengths are scored on the same validation tokens, the whole split here.
    assert {r.data.params["max_length"] for r in trial_runs} == {"16", "32"}
    assert {r.data.params["eval_span_tokens"] for r in trial_runs} == {str(int(r.data.params["val_tokens"]) - 1)
                                                                       for r in trial_runs}  # fmt: skip
    assert all("final_val_loss" in r.data.metrics for r in trial_runs)

    top_two = [t.number for t in sorted(study.get_trials(), key=lambda t: t.value)[:2]]
    assert sorted(int(r.data.tags["confirms_trial"]) for r in confirmations) == sorted(top_two)
    for run in confirmations:
        trial = study.trials[int(run.data.tags["confirms_trial"])]
        assert run.info.status == "FINISHED" and run.data.params["seed"] == "124"  # the base's 123, then the next
        assert run.data.params["max_length"] == str(trial.params["max_length"])
        record = study.user_attrs[confirmation_key(trial.number, 124)]
        assert record["run_id"] == run.info.run_id
        assert record["value"] == pytest.approx(run.data.metrics["final_val_loss"])
        described = run.data.tags["mlflow.note.content"]
        assert (
            described.startswith(f"**Confirmation** of trial {trial.number}")
            and "seed 124: final_val_loss" in described
        )
        assert {"time_setup_s", "time_train_s", "time_eval_s", "time_total_s"} <= run.data.metrics.keys()

    best = best_result(study)
    assert best.seeds == 2 and best.trial.number in top_two
    other = next(n for n in top_two if n != best.trial.number)
    other_mean = (study.trials[other].value + study.user_attrs[confirmation_key(other, 124)]["value"]) / 2
    assert best.mean <= other_mean
    (version,) = client.search_model_versions("name = 'gpt-sweep-tiny'")
    assert version.run_id == best.trial.user_attrs[RUN_ID_ATTR]
    parent = client.get_run(parent_id).data.tags
    assert parent["best_trial"] == str(best.trial.number)
    assert "not confirmed" not in parent["mlflow.note.content"], parent["mlflow.note.content"]
    assert f"trial {best.trial.number}, mean final_val_loss" in captured.out

    # Asked for one more confirmed configuration, the same command trains only that one.
    assert sweep(space, store, verdict, "--trials", "3", "--confirm", "3", "--confirm-seeds", "1") == 0
    assert "Confirming the 3 best configurations with 1 more seed each: 1 run to train" in capsys.readouterr().out
    assert len([r for r in children_of(client, parent_id) if "confirms_trial" in r.data.tags]) == 3

    journal = str(tmp_path / JOURNAL_NAME)
    assert runner.main(["best", "--study", "sweep-tiny", "--storage", journal]) == 0
    assert "over 2 seeds" in capsys.readouterr().out


def test_the_best_mean_wins_over_the_luckiest_seed():
    """A real (in-memory) study: trial 0 had the luckiest seed, trial 1 is better on the mean of three."""
    study = optuna.create_study(direction="minimize")
    for number, value in enumerate((1.0, 1.5, 2.0)):
        study.add_trial(optuna.trial.create_trial(
            value=value, params={"learning_rate": 0.001 * (number + 1)},
            distributions={"learning_rate": FloatDistribution(1e-4, 1e-2)},
            user_attrs={RUN_ID_ATTR: f"run-{number}", "config": {}},
        ))  # fmt: skip
    for number, values in ((0, (3.0, 2.9)), (1, (1.6, 1.4))):
        for seed, value in zip((124, 125), values, strict=True):
            study.set_user_attr(confirmation_key(number, seed), {"seed": seed, "value": value, "run_id": "r"})
    best = best_result(study)
    assert best.trial.number == 1 and best.mean == pytest.approx(1.5) and best.std == pytest.approx(0.1)
    assert [t.number for t in final_order(study)] == [1, 0, 2]
    assert "#1, minimized mean value 1.5000 ± 0.1000 over 3 seeds" in describe_best(study)
    board = leaderboard(study).splitlines()
    assert board[2].split()[:2] == ["1", "COMPLETE"] and "1.5000 ± 0.1000 (3)" in board[2]
    assert board[4].split()[0] == "2" and " - " in board[4]  # not confirmed


def test_a_validation_text_of_its_own_is_used_by_single_runs_and_sweeps(tmp_path, store, verdict):
    held_out = tmp_path / "held_out.txt"
    held_out.write_text(verdict.read_text()[:3000])
    tiny = ["--emb-dim", "16", "--n-heads", "2", "--n-layers", "1", "--max-length", "16", "--max-steps", "4"]
    args = ["single", "--data", str(verdict), "--val-data", str(held_out), "--tracking-uri", store, *tiny]
    assert runner.main(args) == 0
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("gpt-from-scratch").experiment_id])
    expected = len(token_ids(load_source(str(held_out)), gpt2_encoding()))
    assert run.data.params["val_data_source"] == str(held_out)
    assert run.data.params["val_tokens"] == str(expected) and run.data.params["eval_span_tokens"] == str(expected - 1)
    assert int(run.data.params["train_tokens"]) == len(token_ids(load_source(str(verdict)), gpt2_encoding()))

    space = write_space(tmp_path, GRID.replace("base:\n", "base:\n  val_data: held_out.txt\n"))
    assert sweep(space, store, verdict, "--trials", "1") == 0
    trial_run = next(r for r in children_of(client, study_at(tmp_path).user_attrs[PARENT_RUN_ATTR]))
    assert trial_run.data.params["val_data_source"] == str(held_out)  # relative to the space file


def test_a_validation_text_too_short_is_one_line(tmp_path, store, verdict, capsys):
    (tmp_path / "one.txt").write_text("Hello")
    args = ["single", "--data", str(verdict), "--val-data", str(tmp_path / "one.txt"), "--tracking-uri", store]
    assert runner.main(args) == 2
    assert "one.txt has 1 token(s); validation needs at least 2" in capsys.readouterr().err
