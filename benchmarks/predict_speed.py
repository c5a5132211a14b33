"""How long the predict path takes in-process: preprocessing + model, as the server runs it.

    flock /tmp/cpu.lock .venv/bin/python benchmarks/predict_speed.py

Drawings of real MNIST test digits on the canvases the app meets: its own 560x280
sketchpad and an 800x800 one (Gradio's default), as the RGBA arrays the Sketchpad hands
over; and numbers of 4 such digits side by side on the app's canvas. "predict" is the
reading (glyphs, the model on all of them in one batch, the verdict); "with outputs" adds
what the server sends back (the label, the PNG of the glyphs, the JSON). One torch thread,
as in the server. Medians of many calls; the machine is noisy.
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from drawn_digits import draw  # noqa: E402
from test_reading import number_canvas  # noqa: E402

import app  # noqa: E402  (loads the model, sets one torch thread)
import preprocess  # noqa: E402
from train import DATA_DIR, load_mnist  # noqa: E402

CALLS = 1000
CANVASES = [(800, 800), app.CANVAS_SIZE]
NUMBER_DIGITS = 4


def milliseconds(function, inputs, calls: int = CALLS) -> list[float]:
    """The time of each of `calls` calls, cycling through the inputs, after a warm-up."""
    for x in inputs[:20]:
        function(x)
    times = []
    for i in range(calls):
        start = time.perf_counter()
        function(inputs[i % len(inputs)])
        times.append((time.perf_counter() - start) * 1e3)
    return times


def report(name: str, times: list[float], width: int = 44) -> None:
    p90 = np.percentile(times, 90)
    print(f"{name:<{width}} p50 {statistics.median(times):7.2f} ms   p90 {p90:7.2f} ms")


def main() -> None:
    images, _ = load_mnist(DATA_DIR, train=False)
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()}, {CALLS} calls each")
    for size in CANVASES:
        canvases = [
            np.asarray(draw(images[i].numpy(), rng, 0.1, canvas_size=size).convert("RGBA"))
            for i in range(50)
        ]
        report(
            f"predict, {size[0]}x{size[1]} RGBA canvas", milliseconds(app.read_picture, canvases)
        )
        report("  of which preprocessing", milliseconds(preprocess.glyphs, canvases))
    numbers = [
        number_canvas([images[i].numpy() for i in rng.choice(len(images), NUMBER_DIGITS)], rng)[0]
        for _ in range(50)
    ]
    name = (
        f"predict, {NUMBER_DIGITS} digits on the {app.CANVAS_SIZE[0]}x{app.CANVAS_SIZE[1]} canvas"
    )
    report(name, milliseconds(app.read_picture, numbers))
    report("  of which preprocessing", milliseconds(preprocess.glyphs, numbers))
    report("  with outputs (label, PNG, JSON)", milliseconds(app.answer, numbers))
    inputs = [preprocess.to_model_input(images[i].numpy()) for i in range(50)]
    with torch.inference_mode():
        report("model alone, batch of 1", milliseconds(app.MODEL, inputs))


if __name__ == "__main__":
    main()
