"""Several objectives: spaces that name them and their limits, the front, the pruning rule, and sweeps that
prune, resume, keep a configuration over a limit from training, and pick from the front by a limit."""

import math

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState
from support import TINY_BASE, children_of, study_at, sweep, write_space

import runner
from gpt.config import TrainingConfig, read_config_file
from gpt.cost import parameter_count, training_memory_bytes
from gpt.errors import ConfigError, UserError
from sweeps.metrics import INFEASIBLE_ATTR, METRICS_ATTR, Objective, Weight
from sweeps.pareto import PARETO_MARGIN, REPORTS_ATTR, dominated_at, front, hypervolume_2d
from sweeps.ranking import Pick, best_trial
from sweeps.space import DEFAULT_SPACE, SearchSpace
from sweeps.study_runs import PARENT_RUN_ATTR, RUN_ID_ATTR
from sweeps.trial_states import COUNTED_STATES, NOT_RUN_ATTR

LOSS_AND_PARAMS = (
    TINY_BASE
    + """
objectives:
  - {metric: final_val_loss, direction: minimize}
  - {metric: params, direction: minimize}
params:
  learning_rate: {type: float, low: 3.0e-3, high: 1.0e-1, log: true}
  n_layers: {type: int, low: 1, high: 2}
  emb_dim: {type: categorical, choices: [8, 16, 32]}
seed: 3
"""
)
MINIMIZE = (Objective("final_val_loss", "minimize"), Objective("params", "minimize"))


def parse(extra: dict) -> SearchSpace:
    spec = {"params": {"n_layers": {"type": "int", "low": 1, "high": 2}}, **extra}
    return SearchSpace.parse(spec, DEFAULT_SPACE)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"objectives": [{"metric": "final_val_loss"}, {"metric": "flops"}]}, "objectives[1].metric must be one of"),
        ({"objectives": [{"metric": "params"}, {"metric": "final_val_loss"}]}, "objectives[0] must be the loss"),
        (
            {"objectives": [{"metric": "final_val_loss"}, {"metric": "params"}], "pruner": "hyperband"},
            "with several objectives the pruner is pareto or none",
        ),
        ({"objective": {"metric": "final_val_loss"}, "objectives": []}, "not both"),
        ({"constraints": {"latency": {"max": 3}}}, "constraints.latency: no such metric"),
        ({"constraints": {"params": {"below": 3}}}, "must be {max: N} or {min: N}"),
        (
            {"constraints": {"params": {"max": 1000}}},
            "no configuration of this space meets constraints params <= 1,000",
        ),
    ],
)
def test_a_wrong_objective_or_constraint_is_one_clear_line(extra, said):
    with pytest.raises(ConfigError, match=None) as caught:
        parse(extra)
    assert said in str(caught.value)


def test_a_space_names_its_objectives_and_limits_and_reads_7e6_as_a_number():
    space = parse({"objectives": [{"metric": "final_val_loss"}, {"metric": "params"}],
                   "constraints": {"params": {"max": "7e6"}}})  # fmt: skip
    assert space.several and space.metric == "final_val_loss" and space.pruner == "pareto"
    assert space.limits[0].value == 7e6 and space.measures("params") and not space.measures("ms_per_token")
    one = parse({})
    assert not one.several and one.objectives == (Objective("final_val_loss", "minimize"),)


def test_a_limit_on_training_memory_weighs_the_batch_size_a_point_trains_with():
    batches = {"params": {"batch_size": {"type": "categorical", "choices": [2, 32]}}}
    base = parse(batches).trial_base()
    small, large = (training_memory_bytes(base.update(batch_size=b)) / 1e6 for b in (2, 32))
    assert small < large
    space = parse({**batches, "constraints": {"train_memory_mb": {"max": (small + large) / 2}}})
    assert space.point_limits_broken((2,)) is None
    assert "breaks the limit train_memory_mb <=" in space.point_limits_broken((32,))
    with pytest.raises(ConfigError, match=r"meets constraints train_memory_mb <= 50 \(.* from 1"):
        parse({**batches, "constraints": {"train_memory_mb": {"max": 50}}})


def test_a_bad_space_is_one_line_and_status_2_at_the_command_line(tmp_path, store, verdict, capsys):
    space = write_space(tmp_path, LOSS_AND_PARAMS + "constraints:\n  params: {max: 10}\n")
    assert sweep(space, store, verdict, "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no configuration of this space meets constraints params <= 10" in err
    assert runner.main(["best", "--study", "any", "--tracking-uri", store, "--max", "params"]) == 2
    assert "write METRIC=NUMBER" in capsys.readouterr().err
    assert runner.main(["best", "--study", "any", "--tracking-uri", store, "--weight", "best_val_loss=2"]) == 2
    assert "weigh a cost" in capsys.readouterr().err


def test_the_front_keeps_what_nothing_dominates_and_its_hypervolume_is_the_area_it_covers():
    points = {0: (5.0, 10.0), 1: (4.0, 20.0), 2: (6.0, 5.0), 3: (5.5, 12.0), 4: (4.0, 20.0)}
    assert front(points, MINIMIZE) == [0, 1, 2, 4]  # 3 is beaten by 0 on both; equal points both stay
    # reference (7, 25): 0 covers (7-5)*(25-10)=30 with 1's (7-4)*(25-20)=15 under it, 2 adds (7-6)*(10-5)=5
    assert math.isclose(hypervolume_2d(list(points.values()), (7.0, 25.0)), 15 + (7 - 5) * (20 - 10) + 5)
    assert hypervolume_2d([(8.0, 1.0)], (7.0, 25.0)) == 0.0


def finished_trial(study: optuna.Study, loss_at_3: float, params: float) -> None:
    study.add_trial(optuna.trial.create_trial(
        values=[loss_at_3 - 1, params], user_attrs={REPORTS_ATTR: [[2, loss_at_3 + 0.5], [3, loss_at_3]]},
    ))  # fmt: skip


def test_a_trial_is_pruned_only_where_one_costing_no_more_led_it_by_the_margin_at_the_same_point():
    study = optuna.create_study(directions=["minimize", "minimize"])
    finished_trial(study, loss_at_3=6.0, params=1e6)
    leader = study.trials[0]

    def dominated(point: int, loss: float, params: float | None) -> bool:
        costs = {} if params is None else {"params": params}
        return dominated_at(study, 99, point, loss, costs, MINIMIZE) is not None

    trailing = 6.0 + PARETO_MARGIN + 0.05
    assert dominated(3, trailing, 1e6) and dominated(3, trailing, 2e6)  # costs as much, or more, and trails
    assert dominated_at(study, 99, 3, trailing, {"params": 1e6}, MINIMIZE).number == leader.number
    assert not dominated(3, 6.0 + PARETO_MARGIN - 0.01, 1e6)  # inside the margin
    assert not dominated(3, trailing, 5e5)  # cheaper: it may reach the front
    assert not dominated(3, trailing, None)  # its cost is not known
    assert not dominated(2, 9.0, 2e6) and not dominated(6, 9.0, 2e6)  # before 3/10 and after 5/10 nothing is pruned
    assert not dominated(4, 9.0, 2e6)  # the leader reported no loss at 4/10


def test_a_pick_by_weight_prices_each_cost_against_the_loss():
    study = optuna.create_study(directions=["minimize", "minimize"])
    study.set_metric_names(["final_val_loss", "params"])
    for loss, params in ((6.0, 10e6), (6.3, 3e6), (6.8, 1e6)):
        study.add_trial(optuna.trial.create_trial(values=[loss, params], user_attrs={METRICS_ATTR: {"params": params}}))

    def picked(*weights: str) -> int:
        return best_trial(study, Pick(weights=tuple(Weight.parse_text(w) for w in weights))).number

    assert best_trial(study).number == 0  # the best loss
    assert picked("params=1e-7") == 1  # 6.0 + 1.0, 6.3 + 0.3, 6.8 + 0.1
    assert picked("params=1e-6") == 2  # a million parameters now cost a whole nat
    assert picked("params=0") == 0
    with pytest.raises(UserError, match=r"does not optimise ms_per_token; a weight prices one of its costs \(params\)"):
        picked("ms_per_token=1")
    for wrong, said in (("final_val_loss=1", "weigh a cost"), ("params=-1", ">= 0"), ("params", "METRIC=NUMBER")):
        with pytest.raises(ConfigError, match=said):
            Weight.parse_text(wrong)


@pytest.mark.slow
def test_a_two_objective_sweep_prunes_resumes_stops_at_exactly_its_trials_and_picks_from_the_front(
    tmp_path, store, verdict, capsys
):
    space = write_space(tmp_path, LOSS_AND_PARAMS)
    assert sweep(space, store, verdict, "--trials", "5") == 0
    assert sweep(space, store, verdict, "--trials", "10", "--confirm", "2", "--confirm-seeds", "1") == 0  # resumes
    study = study_at(tmp_path)
    assert study.metric_names == ["final_val_loss", "params"]
    counted = study.get_trials(states=COUNTED_STATES)
    assert len(counted) == 10 and {t.number for t in counted} == set(range(10))
    pruned = [t for t in counted if t.state == TrialState.PRUNED]
    assert pruned, "the Pareto rule pruned no trial"
    for trial in pruned:  # reported up to where it stopped, never past half its training
        points = [point for point, _ in trial.user_attrs[REPORTS_ATTR]]
        assert 2 <= max(points) <= 5 and not trial.values
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        config = TrainingConfig.from_dict(trial.user_attrs["config"])
        assert trial.values[1] == parameter_count(config.model) == trial.user_attrs[METRICS_ATTR]["params"]
    out = capsys.readouterr().out
    assert "Pareto front (final_val_loss against params)" in out and "members of the front" in out

    client = MlflowClient(store)
    parent = study.user_attrs[PARENT_RUN_ATTR]
    assert "plots/pareto_front.png" in {a.path for a in client.list_artifacts(parent, "plots")}
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    small = min(t.values[1] for t in complete)
    limit = f"params={small:.0f}"
    assert runner.main(["best", "--study", study.study_name, "--tracking-uri", store, "--max", limit,
                        "--export", str(tmp_path / "small.yaml"), "--register"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    picked = min((t for t in complete if t.values[1] <= small), key=lambda t: t.values[0])
    assert f"within params <= {small:,.0f}: #{picked.number}" in said
    exported = TrainingConfig.from_dict(read_config_file(tmp_path / "small.yaml"))
    assert exported == TrainingConfig.from_dict(picked.user_attrs["config"])  # the pick, ready for `single`
    version = said.split("Registered models:/")[1].split()[0]
    assert client.get_model_version(*version.split("/")).run_id == picked.user_attrs[RUN_ID_ATTR]
    assert runner.main(["generate", "--study", study.study_name, "--tracking-uri", store, "--max", limit,
                        "--max-new-tokens", "3"]) == 0  # fmt: skip
    assert runner.main(["best", "--study", study.study_name, "--tracking-uri", store, "--weight", "params=1"]) == 0
    assert f"weighing params at 1 a unit: #{min(complete, key=lambda t: (t.values[1], t.values[0])).number}" in (
        capsys.readouterr().out
    )  # a nat a parameter: the smallest model, whatever its loss
    assert runner.main(["best", "--study", study.study_name, "--tracking-uri", store, "--max", "params=10"]) == 2
    assert "no complete trial within params <= 10" in capsys.readouterr().err


@pytest.mark.slow
def test_a_configuration_over_a_limit_never_trains_nor_counts(tmp_path, store, verdict, capsys):
    plain = write_space(tmp_path, LOSS_AND_PARAMS, "plain.yaml")
    limit = parameter_count(SearchSpace.load(plain).trial_base().update(emb_dim=16, n_layers=2).model)
    space = write_space(tmp_path, LOSS_AND_PARAMS + f"constraints:\n  params: {{max: {limit}}}\n")
    assert sweep(space, store, verdict, "--trials", "1") == 0
    study_at(tmp_path).enqueue_trial({"learning_rate": 1e-2, "n_layers": 2, "emb_dim": 32})  # as --warm-start-top may
    assert sweep(space, store, verdict, "--trials", "5") == 0
    study = study_at(tmp_path)
    refused = [t for t in study.trials if INFEASIBLE_ATTR in t.user_attrs]
    assert len(refused) == 1 and refused[0].state == TrialState.FAIL
    assert refused[0].user_attrs[NOT_RUN_ATTR].startswith("infeasible, never trained: params")
    assert RUN_ID_ATTR not in refused[0].user_attrs  # no MLflow run: it never started training
    assert len(study.get_trials(states=COUNTED_STATES)) == 5  # the refused one did not count
    trained = children_of(MlflowClient(store), study.user_attrs[PARENT_RUN_ATTR])
    assert len(trained) == 5
    for trial in study.get_trials(states=COUNTED_STATES):
        assert trial.params["emb_dim"] != 32 and trial.user_attrs[METRICS_ATTR]["params"] <= limit
    assert f"Trial {refused[0].number} not run: infeasible, never trained: params" in capsys.readouterr().out
