"""How long the predict path takes in-process: preprocessing + model, as the server runs it.

    flock /tmp/cpu.lock .venv/bin/python -m benchmarks.predict_speed

Drawings of real MNIST test digits on the canvases the app meets: its own 560x280
sketchpad and an 800x800 one (Gradio's default), as the RGBA arrays the Sketchpad hands
over; numbers of 4 such digits side by side on the app's canvas; and numbers of 4 whose
neighbours touch or overlap, drawn with the app's brush (harness/heldout.py), the
case that costs the segmentation search most. "predict" is the reading (ink, the search:
every candidate glyph through the model in one batch, the verdict); "with outputs" adds
what the server sends back (the label, the PNG of the glyphs, the JSON). One torch thread,
as in the server. Medians of many calls; the machine is noisy.
"""

import statistics
import time

import numpy as np
import torch

import app
import preprocess
import segment
from harness import heldout
from harness.drawn import draw, number_canvas
from mnist import DATA_DIR, load_mnist

CALLS = 300
CANVASES = [(800, 800), app.CANVAS_SIZE]
NUMBER_DIGITS = 4


app.configure_server()  # one torch thread a request, as the server reads
READER = app.Reader.load()


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


def pieces(picture: np.ndarray) -> segment.Pieces:
    return segment.pieces(preprocess.ink(picture))


def candidates(picture: np.ndarray) -> int:
    """How many candidate glyphs the search has the model read for a drawing."""
    read = []
    segment.segment(
        preprocess.ink(picture),
        lambda x: read.append(len(x)) or app.reading._classifier(READER.model)(x),
    )
    return read[0] if read else 0


def main() -> None:
    images, labels = load_mnist(DATA_DIR, train=False)
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()}, {CALLS} calls each")
    for size in CANVASES:
        canvases = [
            np.asarray(draw(images[i].numpy(), rng, 0.1, canvas_size=size).convert("RGBA"))
            for i in range(50)
        ]
        report(f"predict, {size[0]}x{size[1]} RGBA canvas", milliseconds(READER.read, canvases))
        report("  of which ink and pieces", milliseconds(pieces, canvases))
    numbers = [
        number_canvas([images[i].numpy() for i in rng.choice(len(images), NUMBER_DIGITS)], rng)[0]
        for _ in range(50)
    ]
    touching = [
        np.asarray(d.picture)
        for d in heldout.touching_numbers(images.numpy(), labels, NUMBER_DIGITS, 50)
    ]
    size = f"{app.CANVAS_SIZE[0]}x{app.CANVAS_SIZE[1]}"
    for name, drawings in (("apart", numbers), ("touching", touching)):
        report(
            f"predict, {NUMBER_DIGITS} digits {name}, {size} canvas",
            milliseconds(READER.read, drawings),
        )
        report("  of which ink and pieces", milliseconds(pieces, drawings))
        counts = [candidates(d) for d in drawings]
        print(f"  candidate glyphs read: median {np.median(counts):.0f}, most {max(counts)}")
        report("  with outputs (label, PNG, JSON)", milliseconds(READER.answer, drawings))
    inputs = [preprocess.to_model_input(images[i].numpy()) for i in range(50)]
    with torch.inference_mode():
        report("model alone, batch of 1", milliseconds(READER.model, inputs))


if __name__ == "__main__":
    main()
