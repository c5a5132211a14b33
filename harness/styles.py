"""Drawings in a habit the shipped reader has not learnt: a writer who slashes their zeros, as
programmers write 0 to tell it from the letter O, alone and in numbers such as "407" or "70";
the same hand crosses its sevens, as most of Europe writes 7.

    python -m harness.styles [--count 200]    # how often the shipped weights misread them

Every digit is an MNIST *training* digit (from the first 55,000: train.py validates on the
last 5,000), thinned to its pen path (harness.drawn) and drawn again with the app's 18 px
brush on its 560x280 canvas, in black on white, as the page sends it; a 0 gets a slash
across it and a 7 a bar across its stem. The shipped weights misread 79% of these drawings
(300, seed 0: 78% of slashed zeros alone, 80% of the numbers), mostly as "not a digit":
their training declines rings with marks inside. They read crossed sevens well (3% misread
alone), so every drawing has a slashed 0 in it; `--sevens` measures crossed sevens alone.
Neither MNIST's test set, nor Hershey fonts, nor scikit-learn's digits are used: the held-out
benchmarks measure with those.

`fill_store` puts such drawings in a real corrections store (corrections.Store), each read
by the weights as the app reads it, labelled with the truth and accepted, as an owner's
review leaves them: the input of `python train.py --corrections`.
"""

import argparse
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from harness.drawn import APP_CANVAS, APP_PEN, paint, pixel_strokes

VAL_SIZE = 5_000  # train.VAL_SIZE: MNIST's last training images validate; never drawn here
KINDS = ("slashed 0", "number", "crossed 7")  # the last only when asked for (`sevens`)
ZERO_SHARE = 0.4  # of the drawings: a slashed 0 alone; the others are numbers with one or more
NUMBER_LENGTHS = (2, 3, 4)  # digits in a number
HEIGHT = (0.45, 0.8)  # a digit's ink height, as a share of the canvas's (app-sized drawings)
BLANK = (0.15, 0.5)  # blank between a number's digits, as a share of their height: never touching
JITTER = 0.06  # each digit's top moves by up to this share of the height (a hand's baseline)
SLASH_OVERSHOOT = (0.05, 0.3)  # the slash passes the ring's box by this share of its size...
SLASH_TILT = (0.7, 1.7)  # ...rising this many pixels up per pixel across (35 to 60 degrees)
BAR_HEIGHT = (0.45, 0.6)  # the 7's crossbar, this share of the way down the digit...
BAR_HALF = (0.15, 0.25)  # ...reaching this share of the digit's height each side of the stem
BAR_SLOPE = 0.1  # ...and sloping by up to this much (pixels up per pixel across)
CANVAS_MARGIN = APP_PEN  # pixels of paper kept around the ink


class Styled(NamedTuple):
    """One drawing as the page sends it, and what it really is."""

    png: bytes  # the 560x280 canvas, black ink on white
    label: str  # "0", "7", "407"...
    kind: str  # one of KINDS


def styled_drawings(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, sevens: bool = False
) -> Iterator[Styled]:
    """`count` drawings in the habit, from MNIST's training `images` (uint8 (60000, 28, 28))
    and `labels`: ZERO_SHARE of them a slashed 0 alone, the others numbers of NUMBER_LENGTHS
    digits with at least one slashed 0 (any 7 in them crossed); or, with `sevens`, crossed
    7s alone. Seeded: the same seed, the same bytes."""
    rng = np.random.default_rng([seed, 2300 + sevens])
    labels = np.asarray(labels)[: len(labels) - VAL_SIZE]
    by_digit = {d: np.flatnonzero(labels == d) for d in range(10)}
    for _ in range(count):
        if sevens:
            kind, text = "crossed 7", "7"
        elif rng.random() < ZERO_SHARE:
            kind, text = "slashed 0", "0"
        else:
            kind, text = "number", _number_text(rng)
        digits = [np.asarray(images[rng.choice(by_digit[int(c)])]) for c in text]
        strokes = [styled_strokes(d, int(c), rng) for d, c in zip(digits, text, strict=True)]
        yield Styled(png_bytes(app_canvas(strokes, rng)), text, kind)


def _number_text(rng: np.random.Generator) -> str:
    """A number's digits, at least one of them a 0 (any may lead: visitors write 07)."""
    length = int(rng.choice(NUMBER_LENGTHS))
    digits = rng.integers(0, 10, size=length)
    digits[rng.integers(length)] = 0
    return "".join(map(str, digits))


def styled_strokes(digit: np.ndarray, label: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A 28x28 uint8 MNIST digit's pen path as strokes (x, y; y down, path pixels), with the
    slash of a 0 or the crossbar of a 7 added; other digits as they are."""
    strokes = pixel_strokes(digit)
    if label == 0:
        strokes.append(_slash(np.concatenate(strokes), rng))
    elif label == 7:
        strokes.append(_crossbar(np.concatenate(strokes), rng))
    return strokes


def _slash(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A straight stroke from below left to above right through the ring's centre, past its
    ink box by SLASH_OVERSHOOT of its size at each end, so it always crosses the ring."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre, size = (low + high) / 2, high - low
    tilt = rng.uniform(*SLASH_TILT)
    reach = size[1] / 2 * (1 + rng.uniform(*SLASH_OVERSHOOT))  # half its height...
    half = np.array([reach / tilt, -reach])  # ...and the matching width (y grows downwards)
    return np.array([centre - half, centre + half])


def _crossbar(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short bar across the 7's stem, BAR_HEIGHT of the way down: centred on the stem's
    ink at that height (the path pixels in the rows around it)."""
    top, bottom = points[:, 1].min(), points[:, 1].max()
    height = bottom - top
    y = top + rng.uniform(*BAR_HEIGHT) * height
    near = points[np.abs(points[:, 1] - y) <= max(1.0, 0.03 * height)]
    stem = near[:, 0].mean() if len(near) else points[:, 0].mean()
    half = rng.uniform(*BAR_HALF) * height
    rise = rng.uniform(-BAR_SLOPE, BAR_SLOPE) * half
    return np.array([[stem - half, y + rise], [stem + half, y - rise]])


def app_canvas(digits: list[list[np.ndarray]], rng: np.random.Generator) -> Image.Image:
    """Digits' strokes (any units) drawn left to right with the app's brush on its canvas,
    black on white (RGB), at one random height, BLANK apart, never touching."""
    width, height = APP_CANVAS
    room = width - 2 * CANVAS_MARGIN
    tall = rng.uniform(*HEIGHT) * height
    scaled = [_scaled(strokes, tall) for strokes in digits]
    blanks = rng.uniform(*BLANK, size=len(digits)) * tall
    blanks[-1] = 0.0
    spans = [np.concatenate(s).max(axis=0)[0] + APP_PEN for s in scaled]  # ink widths
    total = sum(spans) + blanks.sum()
    if total > room:  # too wide for the canvas: written smaller
        shrink = room / total
        scaled = [[stroke * shrink for stroke in s] for s in scaled]
        spans, blanks, tall = [w * shrink for w in spans], blanks * shrink, tall * shrink
        total = room
    left = rng.uniform(CANVAS_MARGIN, width - CANVAS_MARGIN - total + 1e-9)
    top = rng.uniform(CANVAS_MARGIN, height - CANVAS_MARGIN - tall * (1 + JITTER) + 1e-9)
    placed = []
    for strokes, span, blank in zip(scaled, spans, blanks, strict=True):
        offset = np.array([left + APP_PEN / 2, top + APP_PEN / 2 + rng.uniform(0, JITTER) * tall])
        placed += [stroke + offset for stroke in strokes]
        left += span + blank
    canvas = Image.new("RGB", APP_CANVAS, "white")
    paint(canvas, placed, APP_PEN, (0, 0, 0))
    return canvas


def _scaled(strokes: list[np.ndarray], height: float) -> list[np.ndarray]:
    """Strokes scaled so their ink, the brush included, is `height` pixels tall, with the
    corner of their path at 0 (so the brush reaches APP_PEN / 2 above and left of it)."""
    points = np.concatenate(strokes)
    corner, extent = points.min(axis=0), np.ptp(points, axis=0)
    scale = max(height - APP_PEN, 1.0) / max(extent[1], 1.0)
    return [(stroke - corner) * scale for stroke in strokes]


def png_bytes(picture: Image.Image) -> bytes:
    """A picture as PNG file bytes, as the page sends the canvas."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def fill_store(db: Path, drawings: Iterable[Styled], weights: Path | None = None) -> list[int]:
    """Put `drawings` into the corrections store at `db` (created when missing) through
    corrections.Store, each with the reading the `weights` (default: the shipped file) give
    it as the app reads it, the drawing's label as the visitor's answer and the weights'
    sha256; then accept them all, as an owner's review would. Returns their row ids.
    Raises corrections.CorrectionsError when the store can't be written."""
    import corrections  # here: harness.styles draws without the store's or the model's code

    read, sha = app_reader(weights)
    store = corrections.Store.open(db)
    try:
        ids = []
        for drawing in drawings:
            shown = read(drawing.png).as_json()
            row = store.save(uuid.uuid4().hex, drawing.png, shown, drawing.label, sha, 0)
            store.decide(row, "accepted", drawing.label)
            ids.append(row)
        return ids
    finally:
        store.close()


def misread_rates(drawings: Iterable[Styled], weights: Path | None = None) -> dict[str, float]:
    """The share of each kind of drawing (and "all") that the weights read as anything but
    their label, the way the app reads them (reading.read at the weights' threshold)."""
    read, _ = app_reader(weights)
    wrong: dict[str, list[bool]] = {kind: [] for kind in (*KINDS, "all")}
    for drawing in drawings:
        miss = read(drawing.png).text != drawing.label
        wrong[drawing.kind].append(miss)
        wrong["all"].append(miss)
    return {kind: float(np.mean(misses)) for kind, misses in wrong.items() if misses}


def app_reader(weights: Path | None = None) -> tuple[Callable, str]:
    """A function reading PNG bytes as the app does with the weights (default: the shipped
    file) at their threshold, on one torch thread (finetune.one_thread: why); and the
    weights' sha256."""
    import corrections
    import preprocess
    import reading
    from finetune import one_thread
    from model import WEIGHTS_PATH, load_model, read_metadata

    weights = Path(weights or WEIGHTS_PATH)
    model = load_model(weights)
    min_confidence = float(read_metadata(weights)["min_confidence"])

    def read(png: bytes) -> "reading.Reading":
        with one_thread():
            return reading.read(preprocess.read_image(io.BytesIO(png)), model, min_confidence)

    return read, corrections.model_sha256(weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, help="default: the shipped weights")
    parser.add_argument("--save", type=Path, help="a folder for the drawings, as PNG files")
    parser.add_argument("--sevens", action="store_true", help="crossed sevens alone instead")
    args = parser.parse_args()
    from mnist import DATA_DIR, load_mnist

    images, labels = load_mnist(DATA_DIR, train=True)
    drawings = list(
        styled_drawings(images.numpy(), labels.numpy(), args.count, args.seed, args.sevens)
    )
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for k, drawing in enumerate(drawings):
            (args.save / f"{k:04d}-{drawing.label}.png").write_bytes(drawing.png)
    for kind, rate in misread_rates(drawings, args.weights).items():
        count = len(drawings) if kind == "all" else sum(d.kind == kind for d in drawings)
        print(f"{kind:10s} misread {rate:6.1%} of {count}")


if __name__ == "__main__":
    main()
