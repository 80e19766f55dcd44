"""Does the best learning rate hold as the model grows? A factor-2 grid of learning rates across widths and
depths, under both parametrizations, on a fixed token budget.

    python -m benchmarks.lr_transfer --data ../shared/data/wikitext-2/test.txt \\
        --val-data ../shared/data/wikitext-2/valid.txt --jobs 2 --results lr_transfer.json

Each point trains one model from scratch (2 layers at widths 64 to 512, and depths 2 to 8 at width 64,
4 heads, context 64, batch 8, dropout 0) and scores it by ``final_val_loss`` on the same validation
tokens. It prints the table, each shape's best learning rate and how many grid steps it moved from the
base shape's, the loss of the widest model at the base shape's best learning rate against the best of its
own scan, and draws the figure (loss against learning rate, one curve per shape, standard beside mup),
which it logs to MLflow with the table unless ``--no-tracking``. ``--results`` keeps every finished point
in a JSON file, so a run that is cut off goes on where it stopped; ``--widths``, ``--depths``, ``--lrs``
and ``--max-tokens`` shrink it.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click

from benchmarks.options import data_option, positive_numbers, val_data_option
from gpt.atomic import atomic_path
from gpt.config import PARAMETRIZATIONS, PRECISIONS, resolve_config
from gpt.errors import UserError
from process_setup import prepare_sweep_process

BASE_WIDTH, BASE_DEPTH, HEADS = 64, 2, 4


@dataclass(frozen=True)
class Point:
    parametrization: str
    width: int
    depth: int
    learning_rate: float

    @property
    def key(self) -> str:
        return f"{self.parametrization} w{self.width} d{self.depth} lr{self.learning_rate:g}"


def train_point(
    point: Point, data: str, val_data: str | None, max_tokens: int, eval_tokens: int, precision: str
) -> float:
    """``final_val_loss`` of one model trained from scratch at ``point`` (in a worker process: one thread)."""
    import torch

    from gpt.environment import prepare_environment
    from gpt.errors import NonFiniteLossError
    from gpt.training import train

    torch.set_num_threads(1)
    overrides = {
        "emb_dim": point.width, "n_heads": HEADS, "n_layers": point.depth, "drop_rate": 0.0,
        "parametrization": point.parametrization, "base_emb_dim": BASE_WIDTH, "base_n_heads": HEADS,
        "base_n_layers": BASE_DEPTH, "learning_rate": point.learning_rate, "max_length": 64, "batch_size": 8,
        "max_tokens": max_tokens, "eval_freq": 10**9, "final_eval_tokens": eval_tokens, "precision": precision,
    }  # fmt: skip
    config = resolve_config("quick", None, overrides)  # and the quick preset's weight decay, 0.1
    env = prepare_environment(config, data, "cpu", val_data=val_data)
    try:
        return train(env, progress_bar=False).final_val_loss
    except NonFiniteLossError:
        return math.inf  # diverged


def best_rate(losses: dict[float, float]) -> float:
    return min(losses, key=losses.__getitem__)


def grid_steps(rates: list[float], a: float, b: float) -> int:
    return abs(rates.index(a) - rates.index(b))


def report(results: dict[str, float], rates: list[float], widths: list[int], depths: list[int]) -> list[str]:
    """The table, best learning rates and steps moved, and the widest model at the base's best rate."""
    lines = []
    shapes = [("width", w, BASE_DEPTH) for w in widths] + [("depth", BASE_WIDTH, d) for d in depths if d != BASE_DEPTH]
    header = "shape".ljust(22) + "".join(f"{r:>9.4g}" for r in rates) + "   best lr  steps moved"
    for parametrization in PARAMETRIZATIONS:
        lines += [f"{parametrization}: final_val_loss by learning rate", header]
        base = {r: results[Point(parametrization, BASE_WIDTH, BASE_DEPTH, r).key] for r in rates}
        for _axis, width, depth in shapes:
            losses = {r: results.get(Point(parametrization, width, depth, r).key, math.nan) for r in rates}
            if any(math.isnan(v) for v in losses.values()):
                continue
            best = best_rate(losses)
            edge = " (grid edge)" if best in (rates[0], rates[-1]) else ""
            cells = "".join(f"{losses[r]:>9.3f}" if math.isfinite(losses[r]) else f"{'diverged':>9}" for r in rates)
            moved = grid_steps(rates, best, best_rate(base))
            lines.append(f"{f'width {width}, depth {depth}':<22}{cells}   {best:<8.4g} {moved}{edge}")
        widest = max(widths)
        at_widest = {r: results.get(Point(parametrization, widest, BASE_DEPTH, r).key, math.nan) for r in rates}
        if not any(math.isnan(v) for v in at_widest.values()):
            transferred = at_widest[best_rate(base)]
            lines.append(
                f"width {widest} at width {BASE_WIDTH}'s best lr {best_rate(base):g}: {transferred:.3f}, "
                f"{transferred - min(at_widest.values()):+.3f} nats from its own best ({min(at_widest.values()):.3f} "
                f"at lr {best_rate(at_widest):g})"
            )
        lines.append("")
    return lines


def draw(results: dict[str, float], rates: list[float], widths: list[int], depths: list[int], path: Path) -> Path:
    """Loss against learning rate, one curve per width (top) and depth (bottom); standard left, mup right."""
    import matplotlib.pyplot as plt  # on Agg: prepare_sweep_process

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True, sharey="row")
    for column, parametrization in enumerate(PARAMETRIZATIONS):
        for row, (axis, shapes) in enumerate(
            (("width", [(w, BASE_DEPTH) for w in widths]), ("depth", [(BASE_WIDTH, d) for d in depths]))
        ):
            ax = axes[row][column]
            for width, depth in shapes:
                losses = [results.get(Point(parametrization, width, depth, r).key, math.nan) for r in rates]
                shown = [v if math.isfinite(v) else math.nan for v in losses]
                label = f"width {width}" if axis == "width" else f"depth {depth}"
                (line,) = ax.plot(rates, shown, marker="o", label=label)
                if any(math.isfinite(v) for v in shown):
                    best = min(range(len(rates)), key=lambda i: shown[i] if math.isfinite(shown[i]) else math.inf)
                    ax.plot(rates[best], shown[best], marker="*", markersize=14, color=line.get_color())
            ax.set_xscale("log", base=2)
            ax.set_title(f"{parametrization}: across {axis}")
            ax.set_ylabel("final_val_loss")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_to_mlflow(client, settings: dict, lines: list[str], figure: Path) -> str:
    from tracking.store import experiment_id

    run_id = client.create_run(experiment_id(client, "lr-transfer"), run_name="lr-transfer").info.run_id
    for key, value in settings.items():
        client.log_param(run_id, key, value)
    client.log_text(run_id, "\n".join(lines), "lr_transfer.txt")
    client.log_artifact(run_id, str(figure))
    client.set_terminated(run_id)
    return run_id


def read_results(path: Path | None) -> dict[str, float]:
    """The points a cut-off run finished (``--results``), or none."""
    if path is None or not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--results") from None


@click.command()
@data_option
@val_data_option
@click.option("--widths", default="64,128,256,512", show_default=True, callback=positive_numbers(int, HEADS))
@click.option("--depths", default="2,4,8", show_default=True, callback=positive_numbers(int))
@click.option(
    "--lrs", default="0.0005,0.001,0.002,0.004,0.008,0.016,0.032", show_default=True, callback=positive_numbers(float)
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=65536, show_default=True)
@click.option("--eval-tokens", type=click.IntRange(min=1), default=16384, show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Points trained at once.")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="JSON file of finished points.")
@click.option("--figure", type=click.Path(path_type=Path), default=Path("lr_transfer.png"), show_default=True)
@click.option("--tracking/--no-tracking", default=True, show_default=True)
@click.option("--tracking-uri", default=None)
def main(data, val_data, widths, depths, lrs, max_tokens, eval_tokens, precision, jobs, results, figure, tracking,
         tracking_uri) -> None:  # fmt: skip
    prepare_sweep_process()  # the training switches, quiet MLflow, plots to files; inherited by the workers
    rates = sorted(lrs)
    if BASE_WIDTH not in widths or BASE_DEPTH not in depths:
        raise click.BadParameter(f"the base shape (width {BASE_WIDTH}, depth {BASE_DEPTH}) must be measured")
    done = read_results(results)
    client = None
    if tracking:  # an unreachable store is one line now, not after the last point
        from tracking.store import connect

        try:
            client = connect(tracking_uri)
        except UserError as exc:
            raise click.BadParameter(str(exc), param_hint="--tracking-uri") from None
    points = [Point(p, w, BASE_DEPTH, r) for p in PARAMETRIZATIONS for w in widths for r in rates]
    points += [Point(p, BASE_WIDTH, d, r) for p in PARAMETRIZATIONS for d in depths if d != BASE_DEPTH for r in rates]
    todo = [p for p in points if p.key not in done]
    started = time.perf_counter()
    print(f"{len(points)} points, {len(points) - len(todo)} already measured; {jobs} at a time", flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        futures = {
            pool.submit(train_point, p, data, val_data, max_tokens, eval_tokens, precision): p
            for p in sorted(todo, key=lambda p: -p.width * p.depth)  # the longest first, so the ends meet
        }
        for future in futures:
            point = futures[future]
            done[point.key] = future.result()
            print(f"{point.key}: {done[point.key]:.4f} ({time.perf_counter() - started:.0f} s)", flush=True)
            if results:
                with atomic_path(results) as tmp:  # a run cut off mid-write keeps the points before
                    tmp.write_text(json.dumps(done, indent=1))
    lines = report(done, rates, widths, depths)
    print("\n".join(lines))
    draw(done, rates, widths, depths, figure)
    print(f"figure: {figure}")
    if client is not None:
        settings = {"data": data, "val_data": val_data, "widths": widths, "depths": depths, "learning_rates": rates,
                    "max_tokens": max_tokens, "final_eval_tokens": eval_tokens, "precision": precision}  # fmt: skip
        print(f"MLflow run: {log_to_mlflow(client, settings, lines, figure)}")


if __name__ == "__main__":
    main()
