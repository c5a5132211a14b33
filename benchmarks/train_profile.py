"""Where a training step's time goes, side by side in one run: drawing and augmenting the
batch (train.batch: the redraw along pen paths, the affine moves, the non-digits), and the
step itself (train.train_step), with glibc's malloc as train.py sets it
(train.keep_freed_memory) or as it comes, in bfloat16 where the CPU has AMX or in float32
(as a CPU without AMX), with AdamW fused or not, at two batch sizes and with one or two
threads; then the evaluation's forward passes (train.eval_logits) in batches of 2,000 and
of train.EVAL_BATCH. Medians of --rounds rounds of --steps steps each; each setting runs in
a fresh process (glibc adapts its thresholds to what a process has freed before).

    .venv/bin/python -m benchmarks.train_profile [--steps 30] [--rounds 3]

The pictures are a run's own (train.synthesized, cached), on 8,192 training digits.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from mnist import DATA_DIR, load_mnist
from model import build_model
from train import (
    EVAL_BATCH,
    eval_logits,
    keep_freed_memory,
    load_splits,
    make_pictures,
    parse_args,
    synthesized,
    to_inputs,
    train_step,
    uses_bfloat16,
)
from train import batch as draw_batch

DIGITS = 8_192


def step_times(
    data, batch_size: int, fused: bool, float32: bool, steps: int
) -> tuple[float, float]:
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
        train_step(model, optimizer, x, y, others, uses_bfloat16(device, float32))
        if step >= 3:
            drawing.append(drawn - started)
            stepping.append(time.perf_counter() - drawn)
    return 1000 * statistics.median(drawing), 1000 * statistics.median(stepping)


EVAL_BATCHES = (2_000, EVAL_BATCH)  # before and now
SETTINGS = [  # threads, batch, AdamW fused, float32
    (2, 128, True, False),  # train.py's
    (2, 128, True, True),
    (2, 128, False, False),
    (2, 256, True, False),
    (1, 128, True, False),
]


def one_setting(setting: str, steps: int) -> tuple[float, float]:
    """A setting's ("threads,batch,fused,float32") draw and step milliseconds, in this
    process."""
    threads, batch_size, fused, float32 = (int(v) for v in setting.split(","))
    run = parse_args(["--limit", str(DIGITS)])
    mnist = load_splits(run)
    data = make_pictures(run, mnist, synthesized(run, mnist), torch.device("cpu"))
    torch.set_num_threads(threads)
    return step_times(data, batch_size, bool(fused), bool(float32), steps)


def eval_seconds(batch_size: int) -> float:
    """Median seconds of train.eval_logits over 10,000 MNIST test images (float32), in
    batches of `batch_size`."""
    images, _ = load_mnist(DATA_DIR, train=False)
    x = to_inputs(images, torch.device("cpu"))
    model = build_model(1).to(memory_format=torch.channels_last)
    times = []
    for _ in range(4):  # the first warms up
        started = time.perf_counter()
        eval_logits(model, x, batch_size)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def child_times(malloc: str, setting: str, steps: int) -> str:
    """In a fresh process: a setting's times, as JSON on its last line of output."""
    child = [sys.executable, "-m", "benchmarks.train_profile", "--child", malloc, setting]
    out = subprocess.run(
        [*child, "--steps", str(steps)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MALLOC", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one setting, its times as JSON on the last line
        malloc, setting = args.child
        if malloc == "kept":
            keep_freed_memory()
        if setting.startswith("eval,"):
            print(json.dumps(eval_seconds(int(setting.split(",")[1]))))
        else:
            print(json.dumps(one_setting(setting, args.steps)))
        return
    results, evaluations = {}, {}
    for _ in range(args.rounds):
        for malloc in ("kept", "glibc"):
            for setting in SETTINGS:
                key = ",".join(str(int(v)) for v in setting)
                times = child_times(malloc, key, args.steps)
                results.setdefault((malloc, setting), []).append(times)
            for batch_size in EVAL_BATCHES:
                seconds = child_times(malloc, f"eval,{batch_size}", args.steps)
                evaluations.setdefault((malloc, batch_size), []).append(seconds)
    bfloat16 = uses_bfloat16(torch.device("cpu"))
    print(f"torch {torch.__version__}, a CPU {'with' if bfloat16 else 'without'} AMX")
    print("malloc  threads  batch  AdamW     compute   draw ms  step ms  epoch of 55,000")
    for (malloc, (threads, batch_size, fused, float32)), times in sorted(results.items()):
        drawing = statistics.median(t[0] for t in times)
        stepping = statistics.median(t[1] for t in times)
        epoch = (drawing + stepping) / batch_size * 55
        compute = "float32" if float32 or not bfloat16 else "bfloat16"
        print(
            f"{malloc:6s}  {threads:7d}  {batch_size:5d}  {'fused' if fused else 'for-loop':8s}  "
            f"{compute:8s}  {drawing:7.1f}  {stepping:7.1f}  {epoch:8.1f} s"
        )
    print("malloc  evaluation batch  seconds for 10,000 images (float32)")
    for (malloc, batch_size), seconds in sorted(evaluations.items()):
        print(f"{malloc:6s}  {batch_size:16d}  {statistics.median(seconds):.2f}")


if __name__ == "__main__":
    main()
