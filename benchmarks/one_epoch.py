"""One epoch, whole processes, side by side: `python train.py --epochs 1` against the seed's
own one-epoch script (benchmarks/seed_recipe.py), from the process's start to its end
(train.py's: the weights, report and history on disk). On a CPU with AMX, train.py also runs
with --float32, as a CPU without AMX trains.

    .venv/bin/python -m benchmarks.one_epoch [--rounds 3] [--cold]

Rounds alternate the runs, and medians are printed, with each run's MNIST test accuracy.
train.py caches its synthesised pictures (data/pictures/): "warm" reads them, "cold"
(--cold) makes them again in a fresh data folder, as a first run does.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mnist import DATA_DIR
from train import uses_bfloat16

ACCURACY = re.compile(r"test accuracy ([\d.]+)%")


def timed(command: list[str]) -> tuple[float, float]:
    """A command's wall time, seconds, and the test accuracy it printed, percent."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    found = ACCURACY.findall(result.stdout)
    if result.returncode != 0 or not found:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds, float(found[-1])


def fresh_data_dir(folder: Path) -> Path:
    """A data folder holding MNIST (linked) and no cached pictures."""
    data = Path(tempfile.mkdtemp(dir=folder))
    (data / "MNIST").mkdir()
    (data / "MNIST" / "raw").symlink_to((DATA_DIR / "MNIST" / "raw").resolve())
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="also time a run with no cache")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    out = str(folder / "one-epoch.safetensors")
    runs = {
        "seed recipe (1 epoch, batch 32)": [sys.executable, "-m", "benchmarks.seed_recipe"],
        "train.py --epochs 1, warm cache": [sys.executable, "train.py", "--epochs", "1"],
    }
    runs["train.py --epochs 1, warm cache"] += ["--out", out]
    if uses_bfloat16(torch.device("cpu")):  # a CPU without AMX trains in float32: time it too
        runs["train.py --epochs 1 --float32"] = [
            *runs["train.py --epochs 1, warm cache"],
            "--float32",
        ]
    subprocess.run(runs["train.py --epochs 1, warm cache"], capture_output=True, check=True)
    results = {name: [] for name in runs}
    if args.cold:
        results["train.py --epochs 1, cold cache"] = []
    try:
        for _ in range(args.rounds):
            for name, command in runs.items():
                results[name].append(timed(command))
            if args.cold:
                cold = runs["train.py --epochs 1, warm cache"] + ["--data-dir"]
                cold.append(str(fresh_data_dir(folder)))
                results["train.py --epochs 1, cold cache"].append(timed(cold))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seed = statistics.median(s for s, _ in results["seed recipe (1 epoch, batch 32)"])
    for name, values in results.items():
        seconds = statistics.median(s for s, _ in values)
        accuracies = ", ".join(f"{a:.2f}%" for _, a in values)
        print(f"{name:34s} {seconds:6.1f}s  ({seconds / seed:.2f}x the seed's)  test {accuracies}")


if __name__ == "__main__":
    main()
