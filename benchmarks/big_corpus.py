"""Time to the first step and peak memory of `single` on a big generated text.

    python -m benchmarks.big_corpus --megabytes 100 --data ../shared/data/the-verdict.txt

Writes a text of ``--megabytes`` MB (lines of ``--data`` in a seeded random order, so BPE
sees no repeats of whole blocks), then runs ``runner.py single --mode quick --max-steps
STEPS`` on it twice as whole processes, with an empty token cache (tokenizing included)
and with the cache filled. Prints, per run, the seconds to the first evaluation line
(step 0: start-up, tokenizing, the first step and one evaluation), the wall time and the
process's peak RSS.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent


def write_text(path: Path, source: Path, megabytes: float, seed: int = 0) -> int:
    """``megabytes`` of ``source``'s lines in a seeded random order; returns the bytes written."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines(keepends=True) if line.strip()]
    rng, target, written = random.Random(seed), int(megabytes * 1e6), 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            chunk = "".join(rng.choices(lines, k=1000))
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
    return written


def measured_run(args: list[str], folder: Path, cache: Path) -> tuple[float | None, float, float]:
    """Seconds to the step-0 evaluation line, wall seconds and peak RSS in GB of one ``runner.py`` process."""
    env = {**os.environ, "GPT_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "runner.py"), *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first_step, lines = None, []
    for line in process.stdout:
        lines.append(line)
        if first_step is None and line.startswith("Ep 1 (Step 000000)"):
            first_step = time.perf_counter() - started
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("runner.py failed:\n" + "".join(lines[-20:]))
    return first_step, wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Text whose lines make up the generated one.")  # fmt: skip
@click.option("--megabytes", type=click.FloatRange(min=0.01), default=100.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="--max-steps of each run.")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the text, caches and stores go [default: a temporary folder].")  # fmt: skip
def main(data: Path, megabytes: float, steps: int, folder: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="gpt-corpus-", dir=folder) as scratch:
        scratch = Path(scratch)
        text = scratch / "generated.txt"
        size = write_text(text, data, megabytes)
        print(f"generated text: {size / 1e6:.1f} MB from the lines of {data}")
        args = ["single", "--mode", "quick", "--data", str(text), "--max-steps", str(steps), "--eval-freq",
                str(steps), "--tracking-uri", f"sqlite:///{scratch / 'mlflow.db'}", "--no-system-metrics"]  # fmt: skip
        print(f"runner.py {' '.join(args[:7])} ...")
        print(f"{'token cache':<13}{'to step 0 s':>12}{'wall s':>9}{'peak RSS GB':>13}")
        for label in ("empty", "filled"):
            first, wall, rss = measured_run(args, scratch, scratch / "cache")
            print(f"{label:<13}{first or float('nan'):>12.1f}{wall:>9.1f}{rss:>13.2f}")
        tokens = next((scratch / "cache" / "tokens").iterdir())
        print(f"token file: {tokens.stat().st_size / 1e6:.1f} MB ({tokens.stat().st_size // 2:,} uint16 ids)")


if __name__ == "__main__":
    main()
