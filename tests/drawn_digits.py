"""Real MNIST digits redrawn the way visitors draw on the sketchpad.

The test of preprocessing and benchmarks/accuracy.py both need drawings whose true label
is known. Each MNIST digit is thinned to its pen path and drawn again with a round brush:
on a canvas of random size, at a random size and place, with a thin to very thick pen,
in black or a colour, on white or on a transparent background (what a canvas exports).
"""

import numpy as np
import torch
from PIL import Image, ImageDraw

from synth import skeletonize

CANVAS_SIDES = (300, 800)  # each side of the canvas, pixels
DIGIT_FRACTIONS = (0.20, 0.85)  # the drawing's longer side, as a fraction of the canvas's shorter
PEN_FRACTIONS = (0.03, 0.30)  # pen width as a fraction of the drawing's size: thin to very thick
INKS = ((0, 0, 0), (0, 0, 0), (0, 0, 0), (20, 40, 160), (200, 20, 20), (0, 120, 0), (120, 0, 140))
PATH_SCALE = 4  # the digit is thinned at 112x112, which keeps its strokes' shape


def drawings(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` (drawing, label, pen fraction) from the MNIST images, chosen at random."""
    rng = np.random.default_rng(seed)
    for index in rng.choice(len(images), size=count, replace=False):
        pen = float(rng.uniform(*PEN_FRACTIONS))
        yield draw(np.asarray(images[index]), rng, pen), int(labels[index]), pen


def draw(
    digit: np.ndarray,
    rng: np.random.Generator,
    pen_fraction: float,
    canvas_size: tuple[int, int] | None = None,
) -> Image.Image:
    """One 28x28 uint8 MNIST digit redrawn on a canvas (of random size unless given), as
    RGB (white background) or RGBA (transparent)."""
    rows, cols = np.nonzero(pen_path(digit))
    width, height = canvas_size or rng.integers(*CANVAS_SIDES, size=2, endpoint=True).tolist()
    size = rng.uniform(*DIGIT_FRACTIONS) * min(width, height)
    pen = max(1.5, pen_fraction * size)
    scale = (size - pen) / max(np.ptp(rows) + 1, np.ptp(cols) + 1)
    x = (cols - cols.min()) * scale
    y = (rows - rows.min()) * scale
    x += rng.uniform(pen / 2, width - pen / 2 - x.max())
    y += rng.uniform(pen / 2, height - pen / 2 - y.max())

    ink = INKS[rng.integers(len(INKS))]
    transparent = rng.random() < 0.5
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0) if transparent else "white")
    pen_draw = ImageDraw.Draw(canvas)
    points = {(r, c): (float(px), float(py)) for r, c, px, py in zip(rows, cols, x, y, strict=True)}
    for (r, c), start in points.items():
        pen_draw.ellipse(_disc(start, pen), fill=ink + (255,))
        for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):  # each neighbour pair once
            end = points.get((r + dr, c + dc))
            if end is not None:
                pen_draw.line([start, end], fill=ink + (255,), width=round(pen))
    return canvas if transparent else canvas.convert("RGB")


def pen_path(digit: np.ndarray) -> np.ndarray:
    """The digit's strokes thinned to one pixel wide, at PATH_SCALE times its size."""
    ink = torch.from_numpy(digit / max(int(digit.max()), 1)).float().view(1, 1, *digit.shape)
    return skeletonize(ink, scale=PATH_SCALE)[0, 0].numpy().astype(bool)


def _disc(centre: tuple[float, float], diameter: float) -> tuple[float, float, float, float]:
    x, y = centre
    r = diameter / 2
    return (x - r, y - r, x + r, y + r)
