"""How long "Inside the model" takes in-process, per drawing, as the server runs it.

    nice -n 10 .venv/bin/python -m benchmarks.explain_speed

Drawings of real MNIST test digits on the app's own 280x280 canvas. One torch thread, as
in the server. Medians of many calls; the machine is noisy. The goal: at most 1 s for the
whole explanation of one drawing (decode, preprocess, integrated gradients, pictures).
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gradio_client import Client, handle_file
from PIL import Image

import app
import explain
import preprocess
from benchmarks import predict_speed  # its timing helpers
from harness.drawn import draw
from harness.server import serve
from mnist import DATA_DIR, load_mnist

CALLS = 200
ROUND_TRIPS = 40  # through a real server: PNG encoding of the three pictures included
DRAWINGS = 20


app.configure_server()  # one torch thread a request, as the server reads
READER = app.Reader.load()


def milliseconds(function, inputs) -> list[float]:
    return predict_speed.milliseconds(function, inputs, CALLS)


def report(name: str, times: list[float]) -> None:
    predict_speed.report(name, times, width=56)


def main() -> None:
    images, _ = load_mnist(DATA_DIR, train=False)
    rng = np.random.default_rng(0)
    width, height = app.CANVAS_SIZE
    folder = Path(tempfile.mkdtemp())
    payloads = []
    for i in range(DRAWINGS):
        path = folder / f"drawing{i}.png"
        draw(images[i].numpy(), rng, 0.1, canvas_size=app.CANVAS_SIZE).save(path)
        payloads.append({"background": None, "layers": [], "composite": {"path": str(path)}})
    canvases = [np.asarray(Image.open(p["composite"]["path"]).convert("RGBA")) for p in payloads]
    inputs = [preprocess.to_model_input(c) for c in canvases]
    explained = [explain.explain(READER.model, x) for x in inputs]

    print(f"torch threads: {torch.get_num_threads()}, {CALLS} calls each, {width}x{height} canvas")
    report(
        "explain_drawing (the /explain endpoint's work)",
        milliseconds(READER.explain_drawing, payloads),
    )
    for steps in (32, 64, explain.IG_STEPS, 2 * explain.IG_STEPS):
        report(
            f"  explain(): IG, {steps:3} steps (completeness error "
            f"{100 * completeness_error(inputs, steps):.2f}%)",
            milliseconds(lambda x, s=steps: explain.explain(READER.model, x, s), inputs),
        )
    pairs = list(zip(inputs, explained, strict=True))
    report(
        "  saliency picture",
        milliseconds(lambda p: explain.saliency_image(p[0], p[1].attributions), pairs),
    )
    report(
        "  conv1 grid (32 maps)", milliseconds(lambda e: explain.feature_grid(e.conv1), explained)
    )
    report(
        "  conv2 grid (64 maps)", milliseconds(lambda e: explain.feature_grid(e.conv2), explained)
    )
    report("predict (the live label), for comparison", milliseconds(READER.answer, canvases))
    with serve() as url:
        client = Client(url, verbose=False, ssl_verify=False)
        sketches = [
            {"background": None, "layers": [], "composite": handle_file(p["composite"]["path"])}
            for p in payloads
        ]
        for api in ("/predict", "/explain"):
            times = []
            for i in range(ROUND_TRIPS + 3):
                start = time.perf_counter()
                client.predict(sketches[i % len(sketches)], api_name=api)
                times.append((time.perf_counter() - start) * 1e3)
            report(f"{api} round trip, gradio_client (ssl_verify=False)", times[3:])
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def completeness_error(inputs: list[torch.Tensor], steps: int) -> float:
    """Median of |sum of attributions - logit change| / |logit change|: the integral's error."""
    errors = []
    for x in inputs:
        seen = explain.explain(READER.model, x, steps)
        errors.append(abs(float(seen.attributions.sum()) / seen.logit_change - 1))
    return statistics.median(errors)


if __name__ == "__main__":
    main()
