"""Held-out drawings for measuring the reading: kinds of ink the training never saw.

Training's non-digits (synth.py) are letters and symbols rendered in DejaVu, polygons,
loops with marks inside, flat lines, scribbles, zigzags and crossing bars. The non-digits
here are of other makes (though training's marked loops are a smiley's family, and its
# + x are near the hash and the cross): single-stroke letters from the Hershey vector fonts
(1967), Greek letters, astrological, musical, mathematical and map symbols, hand-drawn
shapes (a heart, a house, a lightning bolt...) and doodles made of sinusoids and spirograph
curves. Digits come from MNIST's test set (as pictures, and redrawn canvas-style), the UCI
digits of 43 other writers that scikit-learn ships (8x8, 16 grey levels), Hershey digits in
styles unlike MNIST's (script, cursive, italic) and, where Debian's handwriting font
packages are installed, digits typeset in them. Numbers are MNIST test digits redrawn side
by side on a wide canvas, never touching; and, on the app's own canvas with its brush,
numbers whose neighbours touch or just overlap, digits drawn with a pen lift (alone and in
a number), and taps, dabs, short ticks and small scribbles, which are no digit.

EVALUATION ONLY: nothing here (Hershey fonts, handwriting fonts, UCI digits) may ever be
trained on, or the benchmark stops measuring other writers. Everything is drawn with
harness.drawn's pen and canvases: one round pen of random width, black or coloured ink, on
white or transparent canvases.
"""

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from harness.drawn import (
    APP_CANVAS,
    APP_PEN,
    CANVAS_SIDES,
    DIGIT_FRACTIONS,
    INKS,
    PEN_FRACTIONS,
    draw,
    draw_strokes,
    new_canvas,
    paint,
    pixel_strokes,
)


class Drawing(NamedTuple):
    picture: Image.Image | np.ndarray
    kind: str  # the set it belongs to: "letters", "shapes", "drawn MNIST", "numbers"...
    name: str  # what exactly it is: "scripts A", "heart", "MNIST #1234"
    text: str | None  # the digits it shows, left to right; None for a non-digit
    boxes: tuple = ()  # numbers only: each digit's ink box (left, top, right, bottom)


NON_DIGIT_KINDS = ("letters", "greek", "symbols", "shapes", "doodles")
NON_DIGIT_PEN = (0.02, 0.12)  # of the drawing's size: a thicker pen blots a symbol's detail
NON_DIGIT_SIZE = (0.3, 0.85)  # of the canvas's shorter side: a doodle is not drawn tiny
MAX_TILT_DEG = 12.0  # hand-made: rotated, slanted and stretched a little...
MAX_SHEAR = 0.2
STRETCH = (0.85, 1.15)
WOBBLE = 0.015  # ...and the line wobbles by about this fraction of the drawing's size
STEP = 0.02  # strokes are resampled every 2% of the drawing's size before wobbling

# Letters: Hershey fonts of several hands. Left out, as digits in disguise: O o I l S s Z z
# B b g q (as in training), i and j (a stem with a dot: a 1 once the dot counts as a speck)
# and Q (the script Q is drawn as a 2).
LETTER_FONTS = ("futural", "rowmans", "timesi", "scripts", "scriptc", "cursive", "gothiceng")
LETTERS = "ACDEFGHJKLMNPRTUVWXYacdefhkmnprtuvwxy"
# Greek: only the letters that do not look like Latin ones (training drew those) or a digit
# (Θ θ σ δ ϑ ζ ξ β ι are left out). The fonts map Latin keys to Greek letters in two ways.
GREEK = {
    "greek": "DFGLPSWYacefghklmprtwy",  # Δ Φ Γ Λ Π Σ Ω Ψ α χ ε φ γ η κ λ μ π ρ τ ω ψ
    "timesg": "DFGLPSWYacefghklmprtwy",
    "greekc": "CDKPRUWXacgklpqsuvwx",  # Γ Δ Λ Π Σ Φ Ψ Ω α γ η λ μ π ρ τ φ χ ψ ω
}
# Symbols from Hershey's astrological, musical, mathematical and map fonts. Left out: the
# ASCII signs training drew (+ - = * # @ & % ? ! < > ...), circles (a 0) and a circle with
# a dot, ♃ and ♮ (a 4), ♋ (69), ♭ (a b), ∃ (a 3), § (an S), the rests (a 7, a 3), the C clef (a
# B), ∂, lone dots and dashes, and parallel bars (two 1s).
SYMBOLS = {
    "astrology": "$%'+-/:;<>?@[]_`{|}~",  # ☿ ♀ ♂ ♄ ♅ ♆ ♇ ☾ ☄ ♌ ☊ ♈ ♉ ♊ ♎ ♍ ♏ ♐ ♑ ♒
    "music": "/;<=",  # clefs
    "mathlow": "!\"&'?@:;^_bdefghijklwz|",  # ± ∓ ≦ ≧ ≠ ≡ ∏ ∑ ∝ ∞ √ ⊂ ∪ ⊃ ∩ ∈ arrows ℵ ⊥ ∠
    "symbolic": "LQRSTUVWXZ[]^_`abcdefghjkmnp~",  # ☆ ■ ▲ ◀ ▼ ▶ flag ship anchor ⚒ ✡ ♠ ♡ ♣...
}
# Digits: the single-stroke sans, roman, script and cursive hands, and two whose thick parts
# are drawn with two or three strokes (italic, script complex). Gothic digits are left out:
# blackletter is a typeface, not a hand.
HERSHEY_DIGIT_FONTS = ("futural", "rowmans", "scripts", "cursive", "timesi", "scriptc")
HERSHEY_DIGIT_PEN = (0.03, 0.22)  # of the digit's size: their fonts' strokes are smooth
# Handwriting fonts from Debian packages, for evaluation only (never for training, and never
# needed to run or train the app): digits by other hands, typeset as pictures.
HANDWRITING_FONTS = {
    "fonts-dkg-handwriting": "/usr/share/fonts/truetype/fifthhorseman",
    "fonts-breip": "/usr/share/fonts/truetype/breip",
    "fonts-bwht": "/usr/share/fonts/opentype/bwht",
    "fonts-comic-neue": "/usr/share/fonts/opentype/comic-neue",
}
UCI_SIDES = (48, 240)  # the 8x8 UCI digit is enlarged to this many pixels a side...
UCI_MARGIN = (1.1, 2.0)  # ...on a white canvas this many times larger

# Numbers: MNIST digits side by side on a 2:1 canvas, as people write them.
NUMBER_WIDTHS = (500, 900)  # canvas width; its height is half of it
NUMBER_HEIGHT = (0.3, 0.7)  # digit height, as a fraction of the canvas height
NUMBER_GAP = (0.12, 0.6)  # blank between two digits' ink, as a fraction of the digit height
NUMBER_JITTER = 0.08  # each digit's size and baseline vary by this fraction of its height
NUMBER_PEN = (0.04, 0.22)  # of the digit height (thinner than single digits: they are smaller)


def non_digits(kind: str, count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` drawings of one of NON_DIGIT_KINDS, each a hand-made non-digit."""
    rng = np.random.default_rng([seed, NON_DIGIT_KINDS.index(kind)])
    for _ in range(count):
        name, strokes = _NON_DIGIT_MAKERS[kind](rng)
        pen = float(rng.uniform(*NON_DIGIT_PEN))
        picture = draw_strokes(handmade(strokes, rng), rng, pen, size_fractions=NON_DIGIT_SIZE)
        yield Drawing(picture, kind, name, None)


def hershey_digits(count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` digits from Hershey fonts (script, cursive, italic...), drawn as pen strokes."""
    rng = np.random.default_rng([seed, 100])
    for _ in range(count):
        font = HERSHEY_DIGIT_FONTS[rng.integers(len(HERSHEY_DIGIT_FONTS))]
        digit = str(rng.integers(10))
        strokes = handmade(hershey_strokes(font, digit), rng)
        picture = draw_strokes(strokes, rng, float(rng.uniform(*HERSHEY_DIGIT_PEN)))
        yield Drawing(picture, "Hershey digits", f"{font} {digit}", digit)


def handwriting_fonts() -> tuple[list[Path], list[str]]:
    """The handwriting font files installed, and the packages missing."""
    found, missing = [], []
    for package, folder in HANDWRITING_FONTS.items():
        files = sorted(p for p in Path(folder).glob("*") if p.suffix in (".ttf", ".otf"))
        found += files
        if not files:
            missing.append(package)
    return found, missing


def handwriting_digits(count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` digits typeset in the installed handwriting fonts (none if none is), tilted
    a little, in a random ink and place on a canvas as harness.drawn makes them."""
    fonts = handwriting_fonts()[0]
    rng = np.random.default_rng([seed, 104])
    for _ in range(count if fonts else 0):
        path = fonts[rng.integers(len(fonts))]
        digit = str(rng.integers(10))
        width, height = rng.integers(*CANVAS_SIDES, size=2, endpoint=True).tolist()
        size = rng.uniform(*DIGIT_FRACTIONS) * min(width, height)
        font = ImageFont.truetype(str(path), max(8, round(size)))
        mask = Image.new("L", (round(3 * size) + 20,) * 2)
        ImageDraw.Draw(mask).text((10, 10), digit, font=font, fill=255)
        mask = mask.crop(mask.getbbox())
        mask = mask.resize(
            (
                max(1, round(mask.width * size / max(mask.size))),
                max(1, round(mask.height * size / max(mask.size))),
            ),
            Image.BILINEAR,
        ).rotate(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG), Image.BICUBIC, expand=True)
        mask.thumbnail((width, height))  # a tall tilted digit still fits the canvas
        canvas, transparent = new_canvas(width, height, rng)
        place = (
            int(rng.integers(width - mask.width + 1)),
            int(rng.integers(height - mask.height + 1)),
        )
        canvas.paste(INKS[rng.integers(len(INKS))] + (255,), place, mask)
        picture = canvas if transparent else canvas.convert("RGB")
        yield Drawing(picture, "handwriting fonts", f"{path.stem} {digit}", digit)


def uci_digits(count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` UCI digits (scikit-learn's load_digits: 8x8, 16 grey levels, 43 writers)
    enlarged into pictures: dark ink on a white canvas."""
    from sklearn.datasets import load_digits  # evaluation only; never train on these

    images, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng([seed, 101])
    for index in rng.permutation(len(images))[:count]:
        ink = images[index].reshape(8, 8) / 16
        side = int(rng.integers(*UCI_SIDES, endpoint=True))
        digit = Image.fromarray(np.uint8(255 * (1 - ink))).resize((side, side), Image.BILINEAR)
        width, height = (round(side * rng.uniform(*UCI_MARGIN)) for _ in range(2))
        canvas = Image.new("RGB", (width, height), "white")
        place = (int(rng.integers(width - side + 1)), int(rng.integers(height - side + 1)))
        canvas.paste(digit.convert("RGB"), place)
        yield Drawing(canvas, "UCI digits", f"UCI #{index}", str(labels[index]))


def mnist_plain(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` MNIST images as they are: 28x28 uint8, white on black."""
    rng = np.random.default_rng([seed, 102])
    for index in rng.permutation(len(images))[:count]:
        picture = np.asarray(images[index])
        yield Drawing(picture, "MNIST test", f"MNIST #{index}", str(labels[index]))


def mnist_drawn(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0):
    """`count` MNIST test digits redrawn canvas-style (harness.drawn)."""
    rng = np.random.default_rng([seed, 103])
    for index in rng.permutation(len(images))[:count]:
        picture = draw(np.asarray(images[index]), rng, float(rng.uniform(*PEN_FRACTIONS)))
        yield Drawing(picture, "drawn MNIST", f"MNIST #{index}", str(labels[index]))


def numbers(
    images: np.ndarray, labels: np.ndarray, length: int, count: int, seed: int = 0
) -> Iterator[Drawing]:
    """`count` numbers of `length` MNIST test digits drawn side by side with one pen on a
    2:1 canvas, never touching: sizes, baselines and gaps vary as in handwriting."""
    rng = np.random.default_rng([seed, 200 + length])
    for _ in range(count):
        chosen = rng.choice(len(images), size=length, replace=False)
        picture, boxes = draw_number([np.asarray(images[i]) for i in chosen], rng)
        text = "".join(str(labels[i]) for i in chosen)
        names = ",".join(str(i) for i in chosen)
        yield Drawing(picture, f"{length}-digit numbers", f"MNIST #{names}", text, boxes)


def draw_number(digits: list[np.ndarray], rng: np.random.Generator):
    """MNIST digits drawn left to right on one wide canvas -> (picture, ink boxes)."""
    width = int(rng.integers(*NUMBER_WIDTHS, endpoint=True))
    height = width // 2
    size = rng.uniform(*NUMBER_HEIGHT) * height
    pen = max(1.5, rng.uniform(*NUMBER_PEN) * size)
    # Each digit scaled so its height (pen included) is about `size`; a 1 stays narrow.
    placed = []
    for digit in digits:
        strokes = pixel_strokes(digit)
        points = np.concatenate(strokes)
        corner, extent = points.min(axis=0), np.ptp(points, axis=0) + 1
        own = size * (1 + rng.uniform(-NUMBER_JITTER, NUMBER_JITTER))
        scale = max(own - pen, 1.0) / max(extent[1], extent[0] * 0.8)
        placed.append([(stroke - corner) * scale for stroke in strokes])
    gaps = rng.uniform(*NUMBER_GAP, size=len(digits) - 1) * size
    spans = [np.ptp(np.concatenate(p), axis=0) for p in placed]  # each digit's path: w, h
    shrink = min(  # too big for the canvas: the visitor writes smaller, with the same pen
        1.0,
        (0.94 * width - len(digits) * pen) / (sum(s[0] for s in spans) + gaps.sum()),
        (0.9 * height - pen) / max(s[1] for s in spans),
    )
    placed = [[stroke * shrink for stroke in p] for p in placed]
    inks = [span * shrink + pen for span in spans]  # ink width and height, pen included
    gaps *= shrink
    total = sum(ink[0] for ink in inks) + gaps.sum()
    left = rng.uniform(0.02 * width, width - total - 0.02 * width)
    tallest = max(ink[1] for ink in inks)
    baseline = rng.uniform(tallest + 0.04 * height, 0.98 * height)
    canvas, transparent = new_canvas(width, height, rng)
    ink_colour = INKS[rng.integers(len(INKS))]
    boxes = []
    for i, (strokes, ink) in enumerate(zip(placed, inks, strict=True)):
        bottom = baseline + rng.uniform(-NUMBER_JITTER, NUMBER_JITTER) * ink[1]
        bottom = float(np.clip(bottom, ink[1] + 1, height - 1))
        offset = np.array([left + pen / 2, bottom - ink[1] + pen / 2])
        paint(canvas, [stroke + offset for stroke in strokes], pen, ink_colour)
        boxes.append(tuple(float(v) for v in (left, bottom - ink[1], left + ink[0], bottom)))
        left += ink[0] + (gaps[i] if i < len(gaps) else 0)
    return (canvas if transparent else canvas.convert("RGB")), tuple(boxes)


# --- Strokes: a hand at work --------------------------------------------------------------


def handmade(strokes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes as a person draws them: tilted, slanted, stretched, and with a wobbly line."""
    points = np.concatenate(strokes)
    size = max(float(np.ptp(points, axis=0).max()), 1e-6)
    tilt = np.deg2rad(rng.uniform(-MAX_TILT_DEG, MAX_TILT_DEG))
    cos, sin = np.cos(tilt), np.sin(tilt)
    shape = np.array([[cos, -sin], [sin, cos]]) @ np.array(
        [[rng.uniform(*STRETCH), rng.uniform(-MAX_SHEAR, MAX_SHEAR)], [0, 1]]
    )
    out = []
    for stroke in strokes:
        stroke = resample(stroke, STEP * size)
        along = np.linspace(0, 1, len(stroke))[:, None]
        phase, frequency = rng.uniform(0, 2 * np.pi, 2), rng.uniform(1, 3, 2)
        wobble = WOBBLE * size * np.sin(2 * np.pi * frequency * along + phase)
        out.append((stroke + wobble) @ shape.T)
    return out


def resample(stroke: np.ndarray, step: float) -> np.ndarray:
    """The stroke's polyline with points at most `step` apart (its corners kept)."""
    if len(stroke) < 2:
        return stroke
    pieces = [stroke[:1]]
    for start, end in zip(stroke[:-1], stroke[1:], strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(end - start) / step)))
        pieces.append(start + (end - start) * np.linspace(0, 1, n + 1)[1:, None])
    return np.concatenate(pieces)


@functools.cache
def _hershey(font: str):
    from HersheyFonts import HersheyFonts  # evaluation only; never train on these

    hershey = HersheyFonts()
    hershey.load_default_font(font)
    return hershey


def hershey_strokes(font: str, char: str) -> list[np.ndarray]:
    """One character of a Hershey font as pen strokes (x, y down)."""
    strokes = [np.array(s, dtype=float) for s in _hershey(font).strokes_for_text(char)]
    return [s for s in strokes if len(s)] or [np.zeros((1, 2))]


def _letter(rng: np.random.Generator) -> tuple[str, list[np.ndarray]]:
    font = LETTER_FONTS[rng.integers(len(LETTER_FONTS))]
    char = LETTERS[rng.integers(len(LETTERS))]
    return f"{font} {char}", hershey_strokes(font, char)


def _from_table(table: dict[str, str], rng: np.random.Generator):
    font = list(table)[rng.integers(len(table))]
    char = table[font][rng.integers(len(table[font]))]
    return f"{font} {char}", hershey_strokes(font, char)


# --- Shapes, as a hand draws them (unit square, y down) ------------------------------------


def _arc(cx, cy, rx, ry, start, stop, n=48) -> np.ndarray:
    t = np.linspace(start, stop, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _poly(*points) -> np.ndarray:
    return np.array(points, dtype=float)


def _star(rng):
    points = int(rng.choice([5, 5, 6]))
    if points == 5 and rng.random() < 0.5:  # a pentagram in one stroke
        t = -np.pi / 2 + 2 * np.pi * np.arange(0, 11, 2) / 5
        return [np.stack([np.cos(t), np.sin(t)], axis=1)]
    t = -np.pi / 2 + np.pi * np.arange(2 * points + 1) / points
    r = np.where(np.arange(2 * points + 1) % 2 == 0, 1.0, rng.uniform(0.35, 0.5))
    return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]


def _heart(rng):
    t = np.linspace(0, 2 * np.pi, 80)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([x, y], axis=1)]


def _arrow(rng):
    angle = rng.uniform(0, 2 * np.pi)
    tip = np.array([np.cos(angle), np.sin(angle)])
    tail, head = -tip, rng.uniform(0.3, 0.5)
    left = tip - head * np.array([np.cos(angle - 0.5), np.sin(angle - 0.5)])
    right = tip - head * np.array([np.cos(angle + 0.5), np.sin(angle + 0.5)])
    if rng.random() < 0.5:
        return [np.stack([tail, tip]), np.stack([left, tip, right])]
    return [np.stack([tail, tip]), np.stack([left, tip, right, left])]


def _spiral(rng):
    turns = rng.uniform(2.2, 3.5)
    t = np.linspace(0, 2 * np.pi * turns, int(60 * turns))
    return [np.stack([t * np.cos(t), t * np.sin(t)], axis=1) * rng.choice([-1, 1], 2)]


def _smiley(rng):
    face = _arc(0, 0, 1, 1, 0, 2 * np.pi, 80)
    eyes = [_arc(x, -0.35, 0.07, 0.1, 0, 2 * np.pi, 12) for x in (-0.35, 0.35)]
    mouth = _arc(0, 0.05, 0.55, rng.uniform(0.3, 0.5), 0.15 * np.pi, 0.85 * np.pi)
    return [face, *eyes, mouth]


def _checkmark(rng):
    return [_poly((0, 0.55), (0.35, 1), (1.2, rng.uniform(-0.3, 0.1)))]


def _lightning(rng):
    return [_poly((0.55, 0), (0.1, 0.55), (0.45, 0.55), (0.2, 1.1), (0.9, 0.4), (0.55, 0.4),
                  (0.85, 0), (0.55, 0))]  # fmt: skip


def _house(rng):
    body = _poly((0, 0.45), (0, 1), (1, 1), (1, 0.45), (0, 0.45), (0.5, 0), (1, 0.45))
    door = _poly((0.4, 1), (0.4, 0.7), (0.6, 0.7), (0.6, 1))
    return [body, door] if rng.random() < 0.6 else [body]


def _moon(rng):
    outer = _arc(0, 0, 1, 1, 0.5 * np.pi, 1.5 * np.pi)  # bottom, round the left, to the top
    inner = _arc(0, 0, rng.uniform(0.3, 0.6), 1, 1.5 * np.pi, 0.5 * np.pi)  # and back
    return [np.concatenate([outer, inner])]


def _cloud(rng):
    radii = rng.uniform(0.3, 0.5, int(rng.integers(3, 6)))
    centres = np.cumsum(radii * 1.4) - radii[0] * 0.4
    top = [
        _arc(c, 0.6 - r * 0.3, r, r, np.pi, 2 * np.pi, 20)
        for c, r in zip(centres, radii, strict=True)
    ]
    base = _poly((centres[-1] + radii[-1], 0.6), (centres[0] - radii[0], 0.6))
    return [np.concatenate([*top, base, top[0][:1]])]


def _infinity(rng):
    t = np.linspace(0, 2 * np.pi, 90)
    return [np.stack([np.cos(t), np.sin(t) * np.cos(t)], axis=1) / (1 + np.sin(t)[:, None] ** 2)]


def _cross(rng):
    across = rng.uniform(0.25, 0.5)
    return [_poly((0.5, 0), (0.5, 1)), _poly((0, across), (1, across))]


def _hash(rng):
    return [_poly((0.35, 0), (0.25, 1)), _poly((0.75, 0), (0.65, 1)),
            _poly((0, 0.33), (1, 0.33)), _poly((0, 0.67), (1, 0.67))]  # fmt: skip


def _sun(rng):
    rays = int(rng.integers(6, 11))
    t = 2 * np.pi * np.arange(rays) / rays
    ray = [np.stack([[0.55 * np.cos(a), 0.55 * np.sin(a)], [np.cos(a), np.sin(a)]]) for a in t]
    return [_arc(0, 0, 0.4, 0.4, 0, 2 * np.pi, 40), *ray]


def _envelope(rng):
    return [_poly((0, 0), (1.5, 0), (1.5, 1), (0, 1), (0, 0), (0.75, 0.55), (1.5, 0))]


def _fish(rng):
    t = np.linspace(0.15 * np.pi, 1.85 * np.pi, 50)
    body = np.stack([-np.cos(t), 0.55 * np.sin(t)], axis=1)
    return [np.concatenate([body, _poly((1.5, -0.45), (1.5, 0.45), body[0])])]


SHAPES = {
    "star": _star, "heart": _heart, "arrow": _arrow, "spiral": _spiral, "smiley": _smiley,
    "checkmark": _checkmark, "lightning": _lightning, "house": _house, "moon": _moon,
    "cloud": _cloud, "infinity": _infinity, "cross": _cross, "hash": _hash, "sun": _sun,
    "envelope": _envelope, "fish": _fish,
}  # fmt: skip


def _shape(rng):
    name = list(SHAPES)[rng.integers(len(SHAPES))]
    return name, SHAPES[name](rng)


# --- Doodles: freehand curves unlike training's scribbles ----------------------------------


def _lissajous(rng):
    a, b = [(3, 2), (2, 3), (3, 4), (4, 3), (5, 4), (4, 5), (5, 2)][rng.integers(7)]
    t = np.linspace(0, 2 * np.pi, 240)
    phase = rng.uniform(0.2, 1.3)
    return [np.stack([np.sin(a * t + phase), np.sin(b * t)], axis=1)]


def _spirograph(rng):
    lobes = int(rng.integers(3, 8))
    big, small = lobes, 1
    pen = rng.uniform(0.5, 1.5)
    t = np.linspace(0, 2 * np.pi, 300)
    x = (big - small) * np.cos(t) + pen * np.cos((big - small) / small * t)
    y = (big - small) * np.sin(t) - pen * np.sin((big - small) / small * t)
    return [np.stack([x, y], axis=1)]


def _rose(rng):
    k = [3, 4, 5, 2.5, 1.5][rng.integers(5)]
    t = np.linspace(0, 2 * np.pi * (2 if k % 1 else 1), 300)
    r = np.cos(k * t)
    return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]


def _loops(rng):
    loops = rng.uniform(3, 6)
    t = np.linspace(0, 2 * np.pi * loops, int(50 * loops))
    d = rng.uniform(1.5, 2.5)
    return [np.stack([t - d * np.sin(t), -d * np.cos(t)], axis=1)]


def _wiggle(rng):
    t = np.linspace(0, 1, 300)[:, None]
    f = rng.uniform(2, 7, (3, 2))
    amplitude = rng.uniform(0.15, 0.4, (3, 2))
    phase = rng.uniform(0, 2 * np.pi, (3, 2))
    wave = (amplitude[None] * np.sin(2 * np.pi * f[None] * t[..., None] + phase[None])).sum(1)
    return [wave + np.concatenate([t * rng.uniform(0.5, 1.5), t * rng.uniform(-0.3, 0.3)], 1)]


DOODLES = {
    "lissajous": _lissajous, "spirograph": _spirograph, "rose": _rose, "loops": _loops,
    "wiggle": _wiggle,
}  # fmt: skip


def _doodle(rng):
    name = list(DOODLES)[rng.integers(len(DOODLES))]
    return name, DOODLES[name](rng)


_NON_DIGIT_MAKERS = {
    "letters": _letter,
    "greek": lambda rng: _from_table(GREEK, rng),
    "symbols": lambda rng: _from_table(SYMBOLS, rng),
    "shapes": _shape,
    "doodles": _doodle,
}


# --- On the app's own canvas: touching numbers, pen lifts, taps --------------------------
# Drawn as a visitor draws on the sketchpad: the 560x280 canvas, the 18 px brush (APP_CANVAS,
# APP_PEN), black ink, exported transparent or composited on white.

APP_HEIGHT = (0.45, 0.85)  # a digit's height, as a fraction of the canvas height
TOUCH_OVERLAP = (0.01, 0.08)  # once neighbours touch, they overlap by this much of the height
TOUCH_GAP_LENGTHS = (2, 3, 4)
LIFT_GAP = (0.3, 1.2)  # the blank a pen lift leaves between the strokes, in pen widths
LIFT_TRIES = 30  # places tried to lift the pen at before taking another digit
LIFT_PIECE = 0.25  # each of the two strokes spans at least this share of the digit's height
NUMBER_BLANK = (0.12, 0.5)  # blank between the digits of a number that do not touch, of the height
TAP_KINDS = ("taps", "dabs", "ticks", "small scribbles")
DAB_SLIDE = (3, 20)  # pixels a dab slides
TICK_LENGTH = (10, 30)  # pixels: a short tick of the pen, shorter than a small 1 with this pen
SCRIBBLE_SIDE = (20, 50)  # pixels: a small scribble fits a square this big


def touching_numbers(
    images: np.ndarray, labels: np.ndarray, length: int, count: int, seed: int = 0
) -> Iterator[Drawing]:
    """`count` numbers of `length` MNIST test digits drawn with the app's brush on its
    canvas, each neighbour touching the one before or just overlapping it."""
    rng = np.random.default_rng([seed, 300 + length])
    for _ in range(count):
        chosen = rng.choice(len(images), size=length, replace=False)
        tiles = _digit_tiles([np.asarray(images[i]) for i in chosen], rng)
        overlaps = rng.uniform(*TOUCH_OVERLAP, size=length - 1) * max(t.shape[0] for t in tiles)
        picture, boxes = _app_canvas(tiles, [-o for o in overlaps], rng)
        text = "".join(str(labels[i]) for i in chosen)
        names = ",".join(str(i) for i in chosen)
        yield Drawing(picture, f"{length}-digit touching", f"MNIST #{names}", text, boxes)


def touching_canvas(
    digits: list[np.ndarray], rng: np.random.Generator, overlap: float = TOUCH_OVERLAP[0]
) -> tuple[Image.Image | np.ndarray, tuple]:
    """MNIST digits drawn with the app's brush on its canvas, each touching the one before
    and overlapping it by `overlap` of the height; and each digit's ink box."""
    tiles = _digit_tiles(digits, rng)
    overlap *= max(t.shape[0] for t in tiles)
    return _app_canvas(tiles, [-overlap] * (len(tiles) - 1), rng)


def pen_lift_digits(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, others: int = 0
) -> Iterator[Drawing]:
    """`count` MNIST test digits drawn with a pen lift: the pen path is broken where two
    strokes meet (or anywhere), leaving two strokes that do not touch, with the app's brush
    on its canvas; alone, or (`others` > 0) in a number beside that many digits that do not
    touch it."""
    rng = np.random.default_rng([seed, 400 + others])
    kind = "pen-lift in numbers" if others else "pen-lift digits"
    made = 0
    while made < count:
        chosen = rng.choice(len(images), size=1 + others, replace=False)
        digits = [np.asarray(images[i]) for i in chosen]
        height = _app_height(rng, len(digits))
        lifted = _lifted(digits[0], height, rng)
        if lifted is None:
            continue  # a 0 or a 1 has no place to lift the pen that leaves two strokes
        tiles = [lifted] + [_tile(_scaled(pixel_strokes(d), height)) for d in digits[1:]]
        order = rng.permutation(len(tiles))
        blanks = rng.uniform(*NUMBER_BLANK, size=len(tiles) - 1) * height
        picture, boxes = _app_canvas([tiles[k] for k in order], list(blanks), rng)
        text = "".join(str(labels[chosen[k]]) for k in order)
        made += 1
        yield Drawing(picture, kind, f"MNIST #{chosen[0]} lifted", text, boxes)


def taps(kind: str, count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` marks of one of TAP_KINDS with the app's brush, anywhere on its canvas: a
    tap, a dab (a tap that slid), a short tick or a small scribble. None is a digit."""
    rng = np.random.default_rng([seed, 500 + TAP_KINDS.index(kind)])
    width, height = APP_CANVAS
    for _ in range(count):
        if kind == "taps":
            stroke = np.zeros((1, 2))
        elif kind in ("dabs", "ticks"):
            length = rng.uniform(*(DAB_SLIDE if kind == "dabs" else TICK_LENGTH))
            angle = rng.uniform(0, 2 * np.pi)
            stroke = np.array([[0, 0], [length * np.cos(angle), length * np.sin(angle)]])
        else:
            side = rng.uniform(*SCRIBBLE_SIDE)
            stroke = rng.uniform(0, side, size=(int(rng.integers(3, 7)), 2))
        margin = APP_PEN
        low = margin - stroke.min(axis=0)
        high = np.array([width, height]) - margin - stroke.max(axis=0)
        canvas, transparent = new_canvas(width, height, rng)
        paint(canvas, [stroke + rng.uniform(low, high)], APP_PEN, (0, 0, 0))
        picture = canvas if transparent else canvas.convert("RGB")
        yield Drawing(picture, kind, kind[:-1], None)


def uci_redrawn(count: int, seed: int = 0) -> Iterator[Drawing]:
    """`count` UCI digits (other writers) made MNIST-like (20 px box in 28x28), thinned to
    their pen path and redrawn with a round pen as harness.drawn redraws MNIST's."""
    from sklearn.datasets import load_digits  # evaluation only; never train on these

    images, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng([seed, 105])
    for index in rng.permutation(len(images))[:count]:
        ink = Image.fromarray(np.uint8(images[index].reshape(8, 8) * 255 / 16))
        digit = np.zeros((28, 28), np.uint8)
        digit[4:24, 4:24] = np.asarray(ink.resize((20, 20), Image.BILINEAR))
        picture = draw(digit, rng, float(rng.uniform(*PEN_FRACTIONS)))
        yield Drawing(picture, "UCI redrawn", f"UCI #{index}", str(labels[index]))


def _app_height(rng: np.random.Generator, digits: int) -> float:
    """A digit height on the app's canvas that leaves room for `digits` side by side."""
    width, height = APP_CANVAS
    return float(min(rng.uniform(*APP_HEIGHT) * height, 0.9 * width / (0.85 * digits)))


def _digit_tiles(digits: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Each digit's pen path drawn with the app's brush, at one height for the number."""
    height = _app_height(rng, len(digits))
    return [_tile(_scaled(pixel_strokes(d), height)) for d in digits]


def _scaled(strokes: list[np.ndarray], height: float) -> list[np.ndarray]:
    """Strokes scaled so their ink (the brush included) is `height` pixels tall, corner at 0."""
    points = np.concatenate(strokes)
    corner, extent = points.min(axis=0), np.ptp(points, axis=0) + 1
    scale = max(height - APP_PEN, 1.0) / max(extent[1], 0.8 * extent[0])
    return [(s - corner) * scale for s in strokes]


def _tile(strokes: list[np.ndarray]) -> np.ndarray:
    """The strokes drawn with the app's brush: an alpha array cropped to the ink."""
    far = np.concatenate(strokes).max(axis=0)
    tile = Image.new("RGBA", (int(far[0] + 2 * APP_PEN), int(far[1] + 2 * APP_PEN)), (0, 0, 0, 0))
    paint(tile, [s + APP_PEN for s in strokes], APP_PEN, (0, 0, 0))
    alpha = np.asarray(tile)[..., 3]
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _lifted(digit: np.ndarray, height: float, rng: np.random.Generator) -> np.ndarray | None:
    """The digit drawn in two strokes that do not touch, or None when no place tried
    leaves two strokes of some size: the pen path with a stretch around one of its points
    taken out (a junction of three strokes when there is one, as in a 4 or a 9)."""
    strokes = _scaled(pixel_strokes(digit), height)
    points = np.array([s[0] for s in strokes if len(s) == 1])
    degree = np.array(
        [sum(len(s) == 2 and (s == p).all(axis=1).any() for s in strokes) for p in points]
    )
    junctions = points[degree >= 3]
    for _ in range(LIFT_TRIES):
        pool = junctions if len(junctions) and rng.random() < 0.7 else points
        centre = pool[rng.integers(len(pool))]
        reach = APP_PEN * (1 + rng.uniform(*LIFT_GAP)) / 2
        kept = [s for s in strokes if np.linalg.norm(s - centre, axis=1).min() > reach]
        if not kept:
            continue
        tile = _tile(kept)
        labels, count = ndimage.label(tile > 127, structure=np.ones((3, 3)))
        if count != 2:
            continue
        spans = [r.stop - r.start for r, _ in ndimage.find_objects(labels)]
        if min(spans) >= LIFT_PIECE * tile.shape[0]:
            return tile
    return None


def _contact(before: np.ndarray, tile: np.ndarray) -> int:
    """The column at which a tile's ink, moved in from the right, first touches the ink
    before it (boolean arrays of the same rows)."""
    both = before.any(axis=1) & tile.any(axis=1)
    if not both.any():  # no row in common: side by side
        return int(np.flatnonzero(before.any(axis=0))[-1]) + 1
    reach = before.shape[1] - np.argmax(before[both, ::-1], axis=1)  # after the last ink
    return int(np.max(reach - np.argmax(tile[both], axis=1)))


def _app_canvas(
    tiles: list[np.ndarray], blanks: list[float], rng: np.random.Generator
) -> tuple[Image.Image | np.ndarray, tuple]:
    """Digit tiles left to right on the app's canvas, each `blanks[i]` pixels of blank
    after the one before (negative: they overlap, after touching), in black, transparent
    or on white; and each digit's ink box (left, top, right, bottom)."""
    width, height = APP_CANVAS
    tall = max(t.shape[0] for t in tiles)
    tops = [rng.uniform(-NUMBER_JITTER, NUMBER_JITTER) * tall + (tall - t.shape[0]) for t in tiles]
    tops = [t - min(tops) for t in tops]
    field = np.zeros(
        (int(max(t + s.shape[0] for t, s in zip(tops, tiles, strict=True))) + 1, 5 * width)
    )
    lefts = []
    for k, (tile, top) in enumerate(zip(tiles, tops, strict=True)):
        rows = slice(int(top), int(top) + tile.shape[0])
        if k == 0:  # a canvas's width of margin: a neighbour may reach further left
            left = width
        elif blanks[k - 1] >= 0:  # apart: the blank is between their boxes
            left = lefts[-1] + tiles[k - 1].shape[1] + int(round(blanks[k - 1]))
        else:  # touching: where this tile's ink first meets the ink before it, then closer
            left = _contact(field[rows] > 127, tile > 127) + int(round(blanks[k - 1]))
        lefts.append(left)
        region = field[rows, left : left + tile.shape[1]]
        np.maximum(region, tile, out=region)
    rows, cols = np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0))
    ink = field[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    if ink.shape[1] > width - 4 or ink.shape[0] > height - 4:  # too wide: write smaller
        scale = min((width - 4) / ink.shape[1], (height - 4) / ink.shape[0])
        size = (max(1, int(ink.shape[1] * scale)), max(1, int(ink.shape[0] * scale)))
        ink = np.asarray(Image.fromarray(ink.astype(np.uint8)).resize(size, Image.BILINEAR))
    else:
        scale = 1.0
    x = int(rng.integers(0, width - ink.shape[1] + 1))
    y = int(rng.integers(0, height - ink.shape[0] + 1))
    alpha = np.zeros((height, width), np.uint8)
    alpha[y : y + ink.shape[0], x : x + ink.shape[1]] = ink
    boxes = tuple(
        (
            x + (left - cols[0]) * scale,
            y + (top - rows[0]) * scale,
            x + (left - cols[0] + tile.shape[1]) * scale,
            y + (top - rows[0] + tile.shape[0]) * scale,
        )
        for tile, left, top in zip(tiles, lefts, tops, strict=True)
    )
    canvas = np.zeros((height, width, 4), np.uint8)
    canvas[..., 3] = alpha
    if rng.random() < 0.5:
        return canvas, boxes
    white = np.full((height, width, 3), 255, np.uint8) - alpha[..., None]
    return white, boxes
