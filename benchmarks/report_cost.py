"""What the training report adds to a run of train.py: its end, before and after.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.report_cost

Before: the test accuracy (one pass over the 10,000 test images) and the weights file.
After: the same pass as predictions, the misread digits, the history CSV, the report
figure as PNG and the three files. On the committed weights, with a history as long as
the default run's (its values do not change the cost). Also the one-off import of
matplotlib that train.py now pays, and the first, cold drawing. Medians of REPEATS, side
by side; the machine is noisy.
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import report
from mnist import DATA_DIR, load_mnist
from model import load_model, read_metadata, save_weights, write_atomically
from train import accuracy, parse_args, predict, to_inputs

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
EPOCHS = parse_args([]).epochs  # the default run's


def end_before(model, images, labels, out: Path, metadata: dict[str, str]) -> None:
    accuracy(model, to_inputs(images, torch.device("cpu")), labels)
    save_weights(model, out, metadata)


def end_after(model, images, labels, out: Path, metadata: dict[str, str], history) -> None:
    predicted = predict(model, to_inputs(images, torch.device("cpu")))
    len(report.misread(labels, predicted))
    metadata = metadata | {"history": report.history_csv(history)}
    figure = report.draw_report(history, images, labels, predicted, metadata)
    write_atomically(report.report_path(out), report.png_bytes(figure))
    write_atomically(report.history_path(out), metadata["history"].encode())
    save_weights(model, out, metadata)


def import_seconds() -> float:
    """`import report` (matplotlib) after what train.py imported before it."""
    code = (
        "import time, torch, torchvision, tqdm, model; t = time.perf_counter(); import report; "
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return float(done.stdout)


def main() -> None:
    images, labels = load_mnist(DATA_DIR, train=False)
    model, metadata = load_model(), read_metadata()
    history = [
        report.history_row(epoch=e, loss=0.3 / e, val_accuracy=0.99, lr=1e-3, seconds=7.7)
        for e in range(1, EPOCHS + 1)
    ]
    before, after = [], []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "w.safetensors"
        start = time.perf_counter()  # a run draws once, cold: fonts and caches load first
        end_after(model, images, labels, out, metadata, history)
        cold = time.perf_counter() - start
        for _ in range(REPEATS):
            start = time.perf_counter()
            end_before(model, images, labels, out, metadata)
            before.append(time.perf_counter() - start)
            start = time.perf_counter()
            end_after(model, images, labels, out, metadata, history)
            after.append(time.perf_counter() - start)
    imports = statistics.median(import_seconds() for _ in range(3))
    b, a = statistics.median(before), statistics.median(after)
    print(f"end of run, median: before {b:.2f} s, after {a:.2f} s (first, cold: {cold:.2f} s)")
    print(f"import of matplotlib (once per run): {imports:.2f} s")
    added = max(a, cold) - b + imports
    print(f"added to a training run: {added:.2f} s (goal: at most 10 s)")


if __name__ == "__main__":
    main()
