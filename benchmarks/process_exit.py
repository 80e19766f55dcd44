"""How long a ``runner.py`` process takes to end once its work is done, with and without
``process_setup.exit_without_collecting``, alternated in the same run.

    python -m benchmarks.process_exit --data ../shared/data/the-verdict.txt --repeats 3

Each case is a fresh interpreter that runs ``runner.main`` on a tiny model (a two-step ``single`` run, and
a one-trial ``sweep`` with its report and registration), writes the time when ``main`` returned, and
exits; the time from then until the process is gone is the teardown. Prints the best of ``--repeats``
each way and their ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from benchmarks.options import data_option

ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL = ["--emb-dim", "16", "--n-heads", "2", "--n-layers", "1", "--max-length", "16"]
TINY_SPACE = """\
base:
  mode: quick
  overrides: {num_epochs: 1, emb_dim: 16, n_heads: 2, n_layers: 1, max_length: 16, max_steps: 2}
params:
  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""
CHILD = """\
import sys, time
import runner
from process_setup import exit_without_collecting
if sys.argv[1] == "frozen":
    exit_without_collecting()
status = runner.main(sys.argv[2:])
sys.stderr.write(f"main returned at {time.time()!r}\\n")
sys.exit(status)
"""


def teardown_seconds(frozen: bool, arguments: list[str], folder: Path) -> float:
    """Seconds from ``runner.main`` returning to the process being gone."""
    child = [sys.executable, "-c", CHILD, "frozen" if frozen else "plain", *arguments]
    done = subprocess.run(
        child, cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    ended = time.time()
    if done.returncode != 0:
        raise click.ClickException(f"{' '.join(arguments[:1])} exited {done.returncode}: {done.stderr[-2000:]}")
    returned = float(done.stderr.rsplit("main returned at ", 1)[1].split()[0])
    return ended - returned


@click.command()
@data_option
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Runs each way (best).")
def main(data: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gpt-bench-") as scratch:
        folder = Path(scratch)
        space = folder / "tiny.yaml"
        space.write_text(TINY_SPACE)
        store = f"sqlite:///{folder / 'mlflow.db'}"
        cases = {
            "single, 2 steps": ["single", "--data", data, "--tracking-uri", store, "--max-steps", "2", *TINY_MODEL],
            "sweep, 1 trial": ["sweep", "--space", str(space), "--trials", "1", "--confirm", "0", "--data", data,
                               "--tracking-uri", store],
        }  # fmt: skip
        print(f"teardown after runner.main returned, best of {repeats} each way, alternated:")
        print(f"{'process':<18}{'as before s':>13}{'frozen s':>10}{'faster':>9}")
        for label, arguments in cases.items():
            times: dict[bool, list[float]] = {False: [], True: []}
            for repeat in range(repeats):
                for frozen in (False, True):
                    fresh = ["--study", f"exit-{repeat}-{frozen}"] if arguments[0] == "sweep" else []
                    times[frozen].append(teardown_seconds(frozen, [*arguments, *fresh], folder))
            before, after = min(times[False]), min(times[True])
            print(f"{label:<18}{before:>13.2f}{after:>10.2f}{before / after:>8.1f}x")


if __name__ == "__main__":
    main()
