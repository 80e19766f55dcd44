"""µP (``parametrization: mup``): the same function as standard at its base shape, the coordinate check,
the multipliers of a wider and deeper model, and configs that keep their base shape."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient
from support import REPO, StopAt, sweep, write_space

import runner
from benchmarks.coord_check import LAYER_TYPES, coordinate_check, growth
from benchmarks.train_speed import ids_only_vocabulary, random_tokens
from gpt.config import ModelConfig, TrainingConfig, read_config_file, resolve_config, write_config_file
from gpt.environment import prepare_environment
from gpt.errors import ConfigError
from gpt.model import GPTModel
from gpt.parametrization import INIT_STD, ShapeScaling
from gpt.training import train_step
from sweeps import JOURNAL_NAME
from tracking.mlflow_internals import fluent_calls_on
from tracking.models import load_run_model, register_run_model
from tracking.run_options import RunOptions
from tracking.single import run_single

BASE = dict(vocab_size=300, context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0)


def losses_of(model: ModelConfig, steps: int = 6) -> tuple[list[float], torch.Tensor]:
    """The batch losses of ``steps`` training steps, and the first block's qkv weight after them."""
    config = TrainingConfig(batch_size=4, max_length=32, stride=32, learning_rate=3e-3, weight_decay=0.1,
                            precision="fp32", model=model)  # fmt: skip
    env = prepare_environment(
        config, device="cpu", tokenizer=ids_only_vocabulary(model), tokens=random_tokens(model, 32)
    )
    batches = list(env.train_loader)[:steps]
    losses = [train_step(env, inputs, targets, config.learning_rate).item() for inputs, targets in batches]
    return losses, env.model.trf_blocks[0].att.qkv.weight.detach().clone()


def test_mup_at_its_base_shape_trains_exactly_as_standard():
    standard = losses_of(ModelConfig(**BASE))
    mup = losses_of(ModelConfig(**BASE, parametrization="mup", base_emb_dim=64, base_n_heads=4, base_n_layers=2))
    assert standard[0] == mup[0]  # every loss, to the last bit
    assert torch.equal(standard[1], mup[1])


def test_mup_away_from_its_base_shape_is_another_function():
    shape = {**BASE, "emb_dim": 128, "n_layers": 4}
    standard, mup = losses_of(ModelConfig(**shape)), losses_of(ModelConfig(**shape, parametrization="mup"))
    assert standard[0][0] != mup[0][0]


def test_the_multipliers_of_gpt2_124m_tuned_at_the_quick_shape():
    config = ModelConfig(parametrization="mup", base_emb_dim=64, base_n_heads=4, base_n_layers=2)  # 768, 12, 12
    scaling = ShapeScaling.for_model(config)
    assert (scaling.width, scaling.head, scaling.depth) == (12, 4, 6)  # head size 64 against 16
    model = GPTModel(config.update(n_layers=1))  # one block is enough to read the init of each kind
    assert model.logit_scale == pytest.approx(1 / 12)
    assert model.trf_blocks[0].att.scale == pytest.approx(math.sqrt(16) / 64)  # √(base head size) / head size
    assert model.tok_emb.weight.std().item() == pytest.approx(INIT_STD, rel=0.02)
    assert model.trf_blocks[0].att.qkv.weight.std().item() == pytest.approx(INIT_STD / math.sqrt(12), rel=0.02)
    out_std = INIT_STD / math.sqrt(12) / math.sqrt(2 * 2)  # GPT-2's 1/√(2L) at the base depth
    assert model.trf_blocks[0].ff.layers[2].weight.std().item() == pytest.approx(out_std, rel=0.02)

    hidden, matrices, vectors = model.adamw_groups(weight_decay=0.1)
    assert hidden["lr_scale"] == pytest.approx(1 / 12) and hidden["weight_decay"] == pytest.approx(1.2)
    assert hidden["eps"] == pytest.approx(1e-8 / (12 * 1 / 2))  # the model built here has 1 layer: r = 1/2
    assert (matrices["lr_scale"], matrices["weight_decay"]) == (1.0, 0.1)
    assert (vectors["lr_scale"], vectors["weight_decay"]) == (1.0, 0.0)
    assert {id(p) for p in matrices["params"]} == {id(model.tok_emb.weight), id(model.pos_emb.weight),
                                                    id(model.out_head.weight)}  # fmt: skip
    assert all(p.dim() == 1 for p in vectors["params"])
    assert sum(p.numel() for g in (hidden, matrices, vectors) for p in g["params"]) == sum(
        p.numel() for p in model.parameters()
    )


def test_standard_is_gpt2s_initialisation():
    model = GPTModel(ModelConfig(vocab_size=300, context_length=32, emb_dim=128, n_heads=4, n_layers=8))
    assert model.tok_emb.weight.std().item() == pytest.approx(INIT_STD, rel=0.02)  # not PyTorch's N(0, 1)
    assert model.trf_blocks[0].att.qkv.weight.std().item() == pytest.approx(INIT_STD, rel=0.02)
    assert model.trf_blocks[0].att.out_proj.weight.std().item() == pytest.approx(INIT_STD / 4, rel=0.02)  # 1/√16
    assert not model.trf_blocks[0].att.out_proj.bias.any() and not model.trf_blocks[0].ff.layers[0].bias.any()
    assert model.logit_scale == 1 and model.trf_blocks[0].att.scale is None and model.trf_blocks[0].residual_branch == 1


def test_the_coordinate_check_is_flat_across_width_under_mup_and_grows_under_standard():
    """Widths 64 to 512 after three AdamW steps at lr 1e-2 (two seeds): under mup each layer type's
    activations and their change stay within 2.5x of the narrowest model's (here 0.7-1.6x); under standard
    every layer type past the embeddings moves more than 3x as much in the widest model (here 13-140x).
    The test fails if either parametrization is wired wrong."""
    widths = [64, 128, 256, 512]
    mup = coordinate_check("mup", widths)
    standard = coordinate_check("standard", widths)
    for name in LAYER_TYPES:
        if name != "attention scores":  # after three steps still mostly their initial values, which mup's
            for what in ("size", "change"):  # 1/head size shrinks as 1/sqrt(head size) by design
                assert 0.4 < growth(mup, name, what) < 2.5, (name, what, growth(mup, name, what))
        if name != "embeddings":  # an input layer's update does not grow with width in either
            assert growth(standard, name, "change") > 3, (name, growth(standard, name, "change"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"parametrization": "mu-p"}, "parametrization must be one of standard, mup (got 'mu-p')"),
        ({"base_emb_dim": 60, "base_n_heads": 8}, "base_emb_dim (60) must be divisible by base_n_heads (8)"),
        ({"base_n_layers": 0}, "base_n_layers must be >= 1 (got 0)"),
    ],
)
def test_a_bad_parametrization_is_one_line(values, message):
    with pytest.raises(ConfigError, match=rf"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        resolve_config("quick", None, values)


def test_a_config_file_keeps_its_base_shape_when_the_model_grows(tmp_path):
    tuned = resolve_config("quick", None, {"parametrization": "mup", "learning_rate": 0.0123})
    path = write_config_file(tuned, tmp_path / "best.yaml")
    wide = resolve_config("quick", read_config_file(path), {"emb_dim": 768, "n_heads": 12, "n_layers": 12})
    assert (wide.model.parametrization, wide.model.base_emb_dim, wide.model.base_n_heads) == ("mup", 64, 4)
    assert wide.model.base_n_layers == 2 and wide.learning_rate == 0.0123
    assert ShapeScaling.for_model(wide.model).width == 12


def test_a_compiled_mup_model_computes_the_eager_loss_and_gradients():
    config = ModelConfig(**{**BASE, "emb_dim": 128, "n_layers": 4}, parametrization="mup")
    torch.manual_seed(0)
    model = GPTModel(config)
    ids = torch.randint(0, config.vocab_size, (2, 17))
    eager = model(ids[:, :-1], ids[:, 1:])
    (eager_grad,) = torch.autograd.grad(eager, model.trf_blocks[0].att.qkv.weight)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # traced whole, multipliers included
    loss = compiled(ids[:, :-1], ids[:, 1:])
    (grad,) = torch.autograd.grad(loss, model.trf_blocks[0].att.qkv.weight)
    assert loss.item() == pytest.approx(eager.item(), rel=1e-6) and torch.allclose(grad, eager_grad, atol=1e-7)


def batch_losses(client: MlflowClient, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "batch_loss"))


@pytest.mark.slow
def test_a_mup_model_resumes_with_the_uninterrupted_losses_and_loads_back_from_mlflow(store, verdict, capsys):
    """Twice as wide and deep as its base: every multiplier is in play."""
    overrides = {"num_epochs": 2, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "max_length": 16, "stride": 32,
                 "eval_freq": 10, "precision": "fp32", "parametrization": "mup", "base_emb_dim": 16,
                 "base_n_heads": 2, "base_n_layers": 1}  # fmt: skip
    config = resolve_config("quick", None, overrides)
    options = RunOptions(data=str(verdict), device="cpu", tracking_uri=store, system_metrics=False)
    whole = run_single(config, "quick", options)
    with pytest.raises(KeyboardInterrupt):
        run_single(config, "quick", options, callbacks=[StopAt(13, KeyboardInterrupt())])
    client = MlflowClient(store)
    (stopped,) = [r.info.run_id for r in client.search_runs([whole.experiment_id]) if r.info.status == "KILLED"]
    assert runner.main(["single", "--resume", stopped, "--tracking-uri", store, "--device", "cpu"]) == 0
    assert batch_losses(client, stopped) == batch_losses(client, whole.run_id)
    params = client.get_run(stopped).data.params
    assert (params["parametrization"], params["base_emb_dim"], params["base_n_layers"]) == ("mup", "16", "1")
    assert "mup, base width 16, 2 heads, 1 layers" in client.get_run(stopped).data.tags["mlflow.note.content"]

    model, loaded = load_run_model(client, stopped)
    assert loaded.model == config.model and model.scaling == ShapeScaling.for_model(config.model)
    assert (model.logit_scale, model.trf_blocks[0].residual_branch) == (0.5, 0.5)
    with fluent_calls_on(store, whole.experiment_id):  # not the process's default store, cached by another test
        registered = mlflow.pytorch.load_model(register_run_model(client, stopped, "mup-tiny"))
    ids = torch.randint(0, 50257, (1, 16))
    with torch.no_grad():
        assert torch.equal(registered.eval()(ids), model(ids))


@pytest.mark.slow
def test_tune_small_train_big_the_exported_config_keeps_its_base_shape(tmp_path, store, verdict, capsys):
    """The README's three commands on a tiny proxy: sweep it under mup, export the best, train it wider and deeper."""
    space = write_space(tmp_path, """
base:
  mode: quick
  overrides: {num_epochs: 1, emb_dim: 16, n_heads: 2, n_layers: 1, batch_size: 8, max_length: 16,
              parametrization: mup, base_emb_dim: 16, base_n_heads: 2, base_n_layers: 1}
params:
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
seed: 3
""", "transfer.yaml")  # fmt: skip
    assert sweep(space, store, verdict, "--trials", "2") == 0
    exported = tmp_path / "best.yaml"
    journal = str(tmp_path / JOURNAL_NAME)
    assert runner.main(["best", "--study", "sweep-transfer", "--storage", journal, "--export", str(exported)]) == 0
    best_rate = read_config_file(exported)["learning_rate"]
    wider = ["--emb-dim", "64", "--n-heads", "4", "--n-layers", "2", "--experiment", "big"]
    args = ["single", "--config", str(exported), "--data", str(verdict), "--tracking-uri", store, *wider]
    assert runner.main(args) == 0
    assert "Parametrization: mup, base width 16, 2 heads, 1 layers" in capsys.readouterr().out
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("big").experiment_id])
    params = run.data.params
    assert (params["emb_dim"], params["n_layers"], params["parametrization"]) == ("64", "2", "mup")
    assert (params["base_emb_dim"], params["base_n_heads"], params["base_n_layers"]) == ("16", "2", "1")
    assert float(params["learning_rate"]) == best_rate  # the rate the sweep found, in the base shape's sense


@pytest.mark.slow
def test_the_learning_rate_transfer_benchmark_runs_in_its_tiny_form(tmp_path, verdict):
    """The numbers come from its full form (docs/performance.md); here, that every part of it still runs."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "benchmarks.lr_transfer", "--data", str(verdict), "--widths", "64,128",
               "--depths", "2,3", "--lrs", "0.002,0.004", "--max-tokens", "1024", "--eval-tokens", "256",
               "--jobs", "2", "--results", str(tmp_path / "points.json"), "--figure", str(tmp_path / "lr.png"),
               "--tracking-uri", store]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((tmp_path / "points.json").read_text())) == 2 * 3 * 2  # (2 widths + 1 depth) x 2 rates
    for parametrization in ("standard", "mup"):
        assert re.search(rf"^{parametrization}: final_val_loss by learning rate$", result.stdout, re.MULTILINE)
        assert re.search(r"^width 128 at width 64's best lr [\d.]+: [\d.]+, \+[\d.]+ nats", result.stdout, re.M)
    assert (tmp_path / "lr.png").stat().st_size > 10_000
    (run,) = MlflowClient(store).search_runs([MlflowClient(store).get_experiment_by_name("lr-transfer").experiment_id])
    assert {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id)} == {"lr.png", "lr_transfer.txt"}
