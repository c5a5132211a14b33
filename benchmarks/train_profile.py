"""Where a training step's time goes, side by side in one run: drawing and augmenting the
batch (train.batch: the redraw along pen paths, the affine moves, the non-digits), and the
step itself (train.train_step), with AdamW fused or not, at two batch sizes and with one or
two threads. Medians of --rounds alternating rounds of --steps steps each.

    .venv/bin/python -m benchmarks.train_profile [--steps 30] [--rounds 3]

The pictures are a run's own (train.synthesized, cached), on 8,192 training digits.
"""

import argparse
import statistics
import time

import torch

from model import build_model
from train import batch as draw_batch
from train import load_splits, make_pictures, parse_args, synthesized, train_step, uses_bfloat16

DIGITS = 8_192


def step_times(data, batch_size: int, fused: bool, steps: int) -> tuple[float, float]:
    """Median milliseconds to draw a batch, and to take a step on it."""
    device = data.digits.device
    model = build_model(1).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4, fused=fused)
    generator = torch.Generator().manual_seed(0)
    drawing, stepping = [], []
    for step in range(steps + 3):  # the first three warm up
        index = torch.randint(len(data.digits), (batch_size,), generator=generator)
        started = time.perf_counter()
        x, y, others = draw_batch(data, index, generator, True)
        drawn = time.perf_counter()
        train_step(model, optimizer, x, y, others, uses_bfloat16(device))
        if step >= 3:
            drawing.append(drawn - started)
            stepping.append(time.perf_counter() - drawn)
    return 1000 * statistics.median(drawing), 1000 * statistics.median(stepping)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run = parse_args(["--limit", str(DIGITS)])
    mnist = load_splits(run)
    data = make_pictures(run, mnist, synthesized(run, mnist), torch.device("cpu"))
    print(f"\ntorch {torch.__version__}, bfloat16 autocast: {uses_bfloat16(torch.device('cpu'))}")
    settings = [(2, 128, True), (2, 128, False), (2, 256, True), (1, 128, True)]
    results = {setting: [] for setting in settings}
    for _ in range(args.rounds):
        for threads, batch_size, fused in settings:
            torch.set_num_threads(threads)
            results[(threads, batch_size, fused)].append(
                step_times(data, batch_size, fused, args.steps)
            )
    print("threads  batch  AdamW     draw ms  step ms  per digit ms  epoch of 55,000")
    for (threads, batch_size, fused), times in results.items():
        drawing = statistics.median(t[0] for t in times)
        stepping = statistics.median(t[1] for t in times)
        per_digit = (drawing + stepping) / batch_size
        print(
            f"{threads:7d}  {batch_size:5d}  {'fused' if fused else 'for-loop':8s}  "
            f"{drawing:7.1f}  {stepping:7.1f}  {per_digit:12.3f}  {per_digit * 55:8.1f} s"
        )


if __name__ == "__main__":
    main()
