"""How often the reader says "not a digit" for the wrong cuts a segmentation search makes,
and for taps on the canvas, model alone (no glyph split), against a weights file.

    .venv/bin/python -m benchmarks.junk_declined [--weights PATH] [--count 3000]

Wrong cuts: synth.segmentation_junk made from MNIST *test* digits (training makes them from
training digits), by kind: half a digit, a digit with a slice of its neighbour, two touching
digits as one glyph. Taps: one dab of the app's 18 px brush on its 560x280 canvas, slid 0 to
24 px in any direction, made MNIST-like by preprocess.to_model_input. Also the 10,000 MNIST
test digits, read right and declined at the weights' min_confidence.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import preprocess
import synth
from mnist import DATA_DIR, load_mnist
from model import WEIGHTS_PATH, load_model, read_metadata
from train import to_inputs

KINDS = ("half a digit", "digit and a slice", "two touching digits")  # segmentation_junk's order
CANVAS, BRUSH, MAX_SLIDE = (560, 280), 18, 24


def tap(rng: np.random.Generator) -> Image.Image:
    canvas = Image.new("RGB", CANVAS, "white")
    pen = ImageDraw.Draw(canvas)
    start = np.array(CANVAS) / 2
    end = start + rng.uniform(0, MAX_SLIDE) * np.array([np.cos(a := rng.uniform(0, 7)), np.sin(a)])
    pen.line([tuple(start), tuple(end)], fill="black", width=BRUSH)
    for x, y in (start, end):
        pen.ellipse((x - BRUSH / 2, y - BRUSH / 2, x + BRUSH / 2, y + BRUSH / 2), fill="black")
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, threshold = (
        load_model(args.weights),
        float(read_metadata(args.weights)["min_confidence"]),
    )
    images, labels = load_mnist(DATA_DIR, train=False)
    rng = np.random.default_rng(args.seed)
    junk = synth.segmentation_junk(images, labels, args.count, seed=args.seed)
    taps = [preprocess.to_model_input(tap(rng)) for _ in range(args.count // 10)]
    specks = sum(x is None for x in taps)  # under preprocess's speck size: never read
    taps = torch.cat([x for x in taps if x is not None])
    with torch.inference_mode():

        def top(x):
            return torch.cat([model(b).softmax(1) for b in x.split(2000)]).max(1)

        junk_declined = top(junk).values < threshold
        tap_declined = top(taps).values < threshold
        digits = top(to_inputs(images, torch.device("cpu")))
    print(f"{args.weights.name}: threshold {threshold:.4f}")
    for i, kind in enumerate(KINDS):
        print(f"  {kind:<22} declined {junk_declined[i :: len(KINDS)].float().mean():6.1%}")
    print(f"  {'all wrong cuts':<22} declined {junk_declined.float().mean():6.1%} of {len(junk)}")
    print(
        f"  {'taps, slid 0-24 px':<22} declined {tap_declined.float().mean():6.1%} of "
        f"{len(taps)} (and {specks} too small to read: specks)"
    )
    right = (digits.indices == labels).float().mean()
    declined = (digits.values < threshold).float().mean()
    print(f"  MNIST test: read right {right:.2%}, declined {declined:.2%} (of 10,000)")


if __name__ == "__main__":
    main()
