"""How often the app reads drawn digits right: real MNIST test digits redrawn canvas-style.

    .venv/bin/python -m benchmarks.accuracy [--count 1000] [--seed 0] [--weights PATH]

Every drawing goes through the app's path (reading.read: glyphs, the model, the weights'
min_confidence), as a sketch or an upload would: a drawing split into several
glyphs, or declined as not a digit, counts as a miss. Declining non-digits is measured by
benchmarks/heldout.py. Failures are broken down by pen width, where they concentrate.
"""

import argparse
import collections
from pathlib import Path

import numpy as np
import torch

import reading
from harness.drawn import PEN_FRACTIONS, drawings
from mnist import DATA_DIR, load_mnist
from model import WEIGHTS_PATH, load_model, read_metadata

PEN_BINS = (0.03, 0.08, 0.15, 0.22, 0.30)  # pen width / drawing size; MNIST's own is ~0.12
# What a drawing counts as when it is read as no glyph, split in several, or declined as not
# a digit (the app's answer: the top probability under the weights' min_confidence).
NO_GLYPH, SEVERAL, DECLINED = -1, -2, -3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.weights)
    meta = read_metadata(args.weights)
    min_confidence = float(meta["min_confidence"])
    print(
        f"weights: {args.weights.name} ({meta.get('date')}, {meta.get('epochs')} epochs, "
        f"MNIST test accuracy {meta.get('test_accuracy')})"
    )

    images, labels = (t.numpy() for t in load_mnist(DATA_DIR, train=False))
    rows = []  # (true label, read label or NO_GLYPH or SEVERAL, pen fraction, transparent)
    for drawing, label, pen in drawings(images, labels, args.count, seed=args.seed):
        read = reading.read(drawing, model, min_confidence)
        if read.status == "digit":
            predicted = int(read.text)
        elif len(read.glyphs) == 1:
            predicted = DECLINED
        else:
            predicted = SEVERAL if read.glyphs else NO_GLYPH
        rows.append((label, predicted, pen, drawing.mode == "RGBA"))
    truth, predicted, pens, transparent = (np.array(column) for column in zip(*rows, strict=True))
    correct = truth == predicted

    print(
        f"drawn-digit accuracy: {correct.mean():.2%} on {args.count} drawings "
        f"(pen {PEN_FRACTIONS[0]}-{PEN_FRACTIONS[1]} of the drawing's size, seed {args.seed})"
    )
    for low, high in zip(PEN_BINS, PEN_BINS[1:], strict=False):
        chosen = (pens >= low) & (pens < high)
        print(f"  pen {low:.2f}-{high:.2f}: {correct[chosen].mean():.2%} of {chosen.sum()}")
    for name, chosen in [("transparent", transparent), ("white", ~transparent)]:
        print(f"  {name} background: {correct[chosen].mean():.2%} of {chosen.sum()}")
    print(
        f"  no glyph: {(predicted == NO_GLYPH).sum()}, split: {(predicted == SEVERAL).sum()}, "
        f"declined as not a digit: {(predicted == DECLINED).sum()} (below {min_confidence})"
    )
    confusions = collections.Counter(zip(truth[~correct], predicted[~correct], strict=True))
    print(
        "  commonest mistakes (true -> read):",
        ", ".join(f"{t}->{p} x{n}" for (t, p), n in confusions.most_common(6)),
    )


if __name__ == "__main__":
    main()
