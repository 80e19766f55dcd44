"""Sweeps on real stores in a temp folder: an Optuna journal file and an MLflow SQLite store."""

import subprocess
import sys

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import REPO, SPACE, TINY_BASE, children_of, points, study_at, sweep, write_space

import runner
from gpt.checkpoint import load_checkpoint
from sweeps import JOURNAL_NAME
from sweeps.sampling import LAST_PRUNING_POINT, REPORT_POINTS
from sweeps.storage import open_storage
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from tracking.training import CHECKPOINT_FILE


def test_a_storage_password_is_never_printed_and_the_storage_can_come_from_the_environment(
    tmp_path, store, verdict, capsys, monkeypatch
):
    space = write_space(tmp_path, SPACE)
    url = "postgresql://gpt:hunter2@127.0.0.1:9/optuna"
    assert sweep(space, store, verdict, "--storage", url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "postgresql://gpt:***@127.0.0.1:9/optuna" in out
    monkeypatch.setenv("GPT_RUNNER_STORAGE", url)
    assert sweep(space, store, verdict, "--dry-run") == 0
    assert "gpt:***@127.0.0.1:9/optuna" in capsys.readouterr().out  # the variable, masked
    journal = tmp_path / "given.log"
    assert sweep(space, store, verdict, "--dry-run", "--storage", str(journal)) == 0  # --storage wins
    assert f"in {journal};" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("params: {}\ncolour: red\n", "unknown key 'colour'"),
        ("params:\n  flux: {type: float, low: 0, high: 1}\n", "'flux' is not a searchable setting"),
        ("params:\n  drop_rate: {type: beta, low: 0, high: 1}\n", "type must be one of float, int, categorical"),
        ("params:\n  drop_rate: {type: float, low: 0.3, high: 0.1}\n", "low (0.3) must be <= high (0.1)"),
        ("params:\n  n_layers: {type: categorical, choices: []}\n", "choices must be a non-empty list"),
        (
            "params:\n  n_heads: {type: categorical, choices: [2, 3]}\n",
            "n_heads = 3 cannot run: emb_dim (16) must be divisible by n_heads (3)",
        ),
        ("params:\n  max_length: {type: categorical, choices: [64, 600]}\n", "max_length 600 cannot be filled"),
        ("params:\n  learning_rate: {type: float, low: 0, high: 1, log: true}\n", "log distribution needs low > 0"),
        ("params:\n  drop_rate: {type: float, low: 0, high: 1.5}\n", "drop_rate = 1.5 cannot run"),
        ("params:\n  drop_rate: {type: float, low: 0, high: 0.2}\nsampler: grid\n", "grid sampler needs int"),
        ("params:\n  drop_rate: {type: float, low: 0, hi: 0.2}\n", "unknown key 'hi'"),
        ("params: [\n", "is not valid YAML"),
        ("objective: {metric: accuracy}\nparams:\n  n_layers: {type: int, low: 1, high: 2}\n", "objective.metric"),
    ],
)
def test_broken_spaces_are_refused_before_any_trial(text, message, tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, TINY_BASE + text)
    assert sweep(space, store, verdict, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_missing_space_file_and_bad_counts(tmp_path, store, verdict, capsys):
    assert sweep(tmp_path / "nope.yaml", store, verdict) == 2
    assert "search space file not found" in capsys.readouterr().err
    space = write_space(tmp_path, SPACE)
    for flag, value in (
        ("--trials", "0"),
        ("--workers", "0"),
        ("--keep-checkpoints", "-1"),
        ("--log-every", "0"),
    ):
        assert sweep(space, store, verdict, flag, value) == 2
        assert f"Invalid value for '{flag}'" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_space_and_touches_no_store(tmp_path, store, verdict, capsys):
    assert sweep(write_space(tmp_path, SPACE), store, verdict, "--dry-run", "--pruner", "hyperband") == 0
    out = capsys.readouterr().out
    assert "learning_rate: float 1e-05..0.03 log" in out and "pruner: hyperband" in out and "emb_dim': 16" in out
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / JOURNAL_NAME).exists()


@pytest.mark.slow
def test_sweep_tracks_resumes_prunes_keeps_one_checkpoint_and_exports_the_best(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "4") == 0
    study = study_at(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 4
    client = MlflowClient(store)
    parent_id = study.user_attrs[PARENT_RUN_ATTR]

    assert sweep(space, store, verdict, "--trials", "9") == 0  # resumes the same study under the same parent
    out = capsys.readouterr().out
    study = study_at(tmp_path)
    trials = study.get_trials()
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 9
    assert study.user_attrs[PARENT_RUN_ATTR] == parent_id
    assert "Study sweep-tiny: 4 of 9 trials finished" in out and "mean ± std over seeds" in out

    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-tiny"
    description = parent.data.tags["mlflow.note.content"]
    assert description.startswith("**Sweep** `sweep-tiny`: minimize `final_val_loss`; asked for 9 trials.")
    assert "Study sweep-tiny: " in description and "mean ± std over seeds" in description  # the leaderboard
    assert parent.data.params["space.learning_rate"] == "float 1e-05..0.03 log"
    assert len(client.search_runs([parent.info.experiment_id], "attributes.run_name = 'sweep-tiny'")) == 1
    assert client.get_metric_history(parent_id, "best_value")[-1].value == pytest.approx(study.best_value)
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(parent_id)} | {
        a.path for a in client.list_artifacts(parent_id, "plots")
    }
    assert {"tiny.yaml", "trials.csv", "plots/optimization_history.png", "plots/intermediate_values.png"} <= artifacts

    children = {int(run.data.params["trial_number"]): run for run in children_of(client, parent_id)}
    assert sorted(children) == [t.number for t in trials]
    for trial in trials:
        run = children[trial.number]
        assert run.info.status == "FINISHED"
        assert run.data.tags["trial_state"] == trial.state.name
        assert run.data.params["learning_rate"] == str(trial.params["learning_rate"])  # once, not twice
        assert not [name for name in run.data.params if name.startswith("sampled.")]
        assert run.data.tags["mlflow.note.content"].startswith(f"**Trial {trial.number}** of study `sweep-tiny`")
        assert client.get_metric_history(run.info.run_id, "val_loss")
        assert trial.intermediate_values and set(trial.intermediate_values) <= set(range(REPORT_POINTS + 1))
        times = {name: run.data.metrics[f"time_{name}_s"] for name in ("setup", "train", "eval", "checkpoint", "total")}
        assert min(times.values()) >= 0 and times["train"] > 0 and times["eval"] > 0
        assert times["setup"] + times["train"] + times["eval"] + times["checkpoint"] <= times["total"]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "the median pruner should stop the weakest trials of this space"
    assert all(max(t.intermediate_values) <= LAST_PRUNING_POINT for t in pruned)  # never past half its training
    for trial in pruned:  # the best value it reached before it was stopped
        assert children[trial.number].data.metrics["best_val_loss"] == pytest.approx(
            min(trial.intermediate_values.values())
        )
        assert "validation subset, no final_val_loss" in children[trial.number].data.tags["mlflow.note.content"]

    with_checkpoint = [n for n, run in children.items() if run.data.tags.get("checkpoint") == CHECKPOINT_FILE]
    assert with_checkpoint == [study.best_trial.number]
    for number, run in children.items():
        files = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]
        assert files == ([CHECKPOINT_FILE] if number == study.best_trial.number else [])
    best_checkpoint = load_checkpoint(client.download_artifacts(children[study.best_trial.number].info.run_id,
                                                                CHECKPOINT_FILE, str(tmp_path)))  # fmt: skip
    assert "model_state_dict" in best_checkpoint and "optimizer_state_dict" not in best_checkpoint  # never resumed

    exported = tmp_path / "best.yaml"
    journal = str(tmp_path / JOURNAL_NAME)
    assert runner.main(["best", "--study", "sweep-tiny", "--storage", journal, "--export", str(exported)]) == 0
    assert f"#{study.best_trial.number}" in capsys.readouterr().out
    args = ["single", "--config", str(exported), "--data", str(verdict), "--tracking-uri", store]
    assert runner.main([*args, "--experiment", "rerun"]) == 0
    rerun = client.search_runs([client.get_experiment_by_name("rerun").experiment_id])[0]
    assert rerun.data.metrics["final_val_loss"] == pytest.approx(study.best_value, abs=1e-5)


@pytest.mark.slow
def test_a_nan_trial_fails_and_the_sweep_goes_on_until_the_space_is_used_up(tmp_path, store, verdict, capsys):
    space = write_space(
        tmp_path,
        TINY_BASE + "params:\n  learning_rate: {type: categorical, choices: [1.0e-3, 1.0e+5]}\nsampler: grid\n",
    )
    assert sweep(space, store, verdict, "--trials", "2") == 0  # the failed trial does not count...
    out = capsys.readouterr().out  # ...and its point is not drawn again
    assert out.count("the search space is exhausted: each of its 2 points was tried") == 1
    trials = {t.params["learning_rate"]: t for t in study_at(tmp_path).get_trials() if t.params}
    assert trials[1e-3].state == TrialState.COMPLETE
    failed = trials[1e5]
    assert failed.state == TrialState.FAIL and "NonFiniteLossError: loss became nan" in failed.user_attrs["fail_reason"]
    run = MlflowClient(store).get_run(failed.user_attrs[RUN_ID_ATTR])
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("NonFiniteLossError")


@pytest.mark.slow
def test_a_study_made_from_another_space_is_not_mixed_in(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "1") == 0
    space.write_text(SPACE.replace("high: 0.2", "high: 0.1"))
    assert sweep(space, store, verdict, "--trials", "2") == 2
    assert "made from a different search space" in capsys.readouterr().err


@pytest.mark.slow
def test_two_workers_run_exactly_the_trials_asked_for_and_never_the_same_point(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "5", "--workers", "2") == 0
    study = study_at(tmp_path)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 5
    children = children_of(MlflowClient(store), study.user_attrs[PARENT_RUN_ATTR])
    assert len(children) == 5 and {run.info.status for run in children} == {"FINISHED"}
    assert len(set(points(study))) == len(points(study)) == 5


@pytest.mark.slow
def test_two_sweep_commands_in_two_terminals_share_one_journal_and_run_exactly_n(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE)
    command = [sys.executable, str(REPO / "runner.py"), "sweep", "--space", str(space), "--trials", "4"]
    command += ["--confirm", "0", "--data", str(verdict), "--tracking-uri", store, "--log-every", "5"]
    terminals = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [terminal.communicate(timeout=600)[0] for terminal in terminals]
    assert [terminal.returncode for terminal in terminals] == [0, 0], "\n---\n".join(outputs)  # whole, not cut
    study = study_at(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 4
    assert len(set(points(study))) == len(points(study)) == 4
    ran = [sum(line.startswith("[") and " trial " in line for line in output.splitlines()) for output in outputs]
    assert sum(ran) == 4  # each trial reported by the one process that trained it
    children = children_of(MlflowClient(store), study.user_attrs[PARENT_RUN_ATTR])  # one parent for both
    assert len(children) == 4 and {run.info.status for run in children} == {"FINISHED"}


@pytest.mark.slow
def test_a_resumed_study_draws_the_points_an_uninterrupted_one_would(tmp_path, store, verdict):
    space = write_space(tmp_path, SPACE)
    assert sweep(space, store, verdict, "--trials", "2", "--study", "resumed") == 0
    assert sweep(space, store, verdict, "--trials", "4", "--study", "resumed") == 0
    assert sweep(space, store, verdict, "--trials", "4", "--study", "in-one-go") == 0
    resumed, in_one_go = points(study_at(tmp_path, "resumed")), points(study_at(tmp_path, "in-one-go"))
    assert len(set(resumed)) == len(resumed) == 4
    assert resumed == in_one_go


@pytest.mark.slow
def test_a_finite_space_is_searched_without_repeats_and_stops_when_used_up(tmp_path, store, verdict, capsys):
    space = write_space(
        tmp_path,
        TINY_BASE
        + "params:\n  max_length: {type: categorical, choices: [16, 32]}\n"
        + "  n_layers: {type: int, low: 1, high: 2}\npruner: none\nseed: 5\n",
    )
    assert sweep(space, store, verdict, "--trials", "6") == 0
    assert "the search space is exhausted: each of its 4 points was tried" in capsys.readouterr().out
    study = study_at(tmp_path)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert len(set(points(study))) == len(points(study)) == 4


def test_best_without_the_storage_file_is_one_line(tmp_path, store, capsys):
    assert runner.main(["best", "--study", "nothing", "--storage", str(tmp_path / "j.log")]) == 2
    assert "no Optuna storage at" in capsys.readouterr().err


def test_best_of_a_study_the_storage_does_not_hold_is_one_line(tmp_path, store, capsys):
    journal = tmp_path / "j.log"
    optuna.create_study(study_name="other", storage=open_storage(str(journal)))
    assert runner.main(["best", "--study", "nothing", "--storage", str(journal)]) == 2
    assert capsys.readouterr().err.strip() == f"Error: no study named 'nothing' in {journal}"


@pytest.mark.slow
def test_a_token_budget_in_the_base_gives_every_context_length_the_same_tokens(tmp_path, store, verdict):
    space = write_space(
        tmp_path,
        TINY_BASE.replace("batch_size: 8}", "batch_size: 8, max_tokens: 2048}")
        + "params:\n  max_length: {type: categorical, choices: [16, 32]}\nsampler: grid\npruner: none\n",
    )
    assert sweep(space, store, verdict, "--trials", "2") == 0
    client = MlflowClient(store)
    children = children_of(client, study_at(tmp_path).user_attrs[PARENT_RUN_ATTR])
    steps = {r.data.params["max_length"]: r.data.params["total_steps"] for r in children}
    assert steps == {"16": "16", "32": "8"}  # 2048 tokens in batches of 8 windows
    assert {r.data.metrics["tokens_seen"] for r in children} == {2048}
