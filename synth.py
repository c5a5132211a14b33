"""Training pictures: digits in styles that MNIST lacks, and things that are not digits
(letters, symbols, shapes, wrong cuts through numbers, taps and dabs).

Each is made MNIST-like by preprocess.py, as the app's input is; augment.py redraws them
along their pen paths during training.
"""

from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import preprocess
from model import IMAGE_SIZE

# Things that are not digits, for outlier exposure (Hendrycks et al., 2019): the model learns
# to spread its belief evenly over the ten digits when it sees one. Letters and symbols come from
# the DejaVu fonts that matplotlib bundles (so training needs no system fonts); strokes, shapes
# and scribbles are drawn here. Left out: what a person could take for a digit (O o Q (0),
# I l i j | / ( ) [ ] (1), Z z (2), S s $ (5), G b (6), B & (8), g q (9)...), and Greek and
# most shapes of the evaluation sets (stars, hearts, arrows, spirals, houses...), which
# measure what training never saw; loops with marks inside (a face's family) and # + x are
# drawn here. No drawing here is one near-vertical stroke (a 1) or a plain loop (a 0): that
# teaches the model to doubt real digits, and every doubted digit costs the threshold.
FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
)
CHARACTERS = "ACDEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy#%*+<>=?@~€¥^_-÷×©®¶†‡♠♣ЖИШЩЮЯжиюяшщ"
# Letters of other hands and scripts, and signs, that only DejaVu Sans draws: script and
# blackletter capitals, Armenian, Georgian, Hebrew (those that look like no digit), and
# signs that the evaluation's symbols do not use (it has ℵ ⊥ ∪ ∩ ≠ ≡, so they are not here).
SANS_CHARACTERS = (
    "ℋℌℑℒℛℜℭℯℰℱℳℶԱԲԴԵԷԸԹԺԻԼԽՀՃՄՆՈՌՍՎՐՒՓՔՖաբդեէըթժիխհղմոպռսվտրփքֆდთლორსტფღჩჭჯאהחטמעצקשת"
    "∫∬∮∇∴∵≈⊕⊗♪♫♯☂☃☎☘☯♨✈✂⌘❀✿❄✱☮☸⚙⚛⚜"
)
SANS_FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf")
SKETCH_SIDE = 112  # shapes are drawn at 4x the model's size, then made MNIST-style
SKETCH_PEN = 8  # pixels at SKETCH_SIDE; the redraw in `augment` varies the pen later...
NONDIGIT_PEN_STEPS = 4  # ...up to 4.5 px: a thicker pen blots a face or a star into a 0 or a 1


def nondigits(count: int, seed: int) -> torch.Tensor:
    """`count` MNIST-style pictures (N, 1, 28, 28) of letters, symbols, shapes and scribbles."""
    rng = np.random.default_rng(seed)
    makers = [_glyph] * 4 + [_polygon, _marked_loop, _flat_line, _scribble, _zigzag, _bars]
    pictures = []
    while len(pictures) < count:
        x = preprocess.to_model_input(makers[rng.integers(len(makers))](rng))
        if x is not None:
            pictures.append(x[0])
    return torch.stack(pictures)


def _canvas():
    image = Image.new("L", (SKETCH_SIDE, SKETCH_SIDE), 255)
    return image, ImageDraw.Draw(image)


def _stroke(draw, points, width: int = SKETCH_PEN) -> None:
    draw.line([tuple(p) for p in points], fill=0, width=width, joint="curve")
    for x, y in (points[0], points[-1]):
        draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)


def _typeset(character: str, font: ImageFont.FreeTypeFont):
    """One character in `font`, centred on a sketch canvas."""
    image, draw = _canvas()
    centre = (SKETCH_SIDE // 2, SKETCH_SIDE // 2)
    draw.text(centre, character, font=font, fill=0, anchor="mm")
    return image


def _glyph(rng):
    """A letter or symbol from one of the bundled DejaVu fonts."""
    if rng.random() < len(SANS_CHARACTERS) / (len(SANS_CHARACTERS) + len(CHARACTERS)):
        characters, files = SANS_CHARACTERS, SANS_FONT_FILES
    else:
        characters, files = CHARACTERS, FONT_FILES
    font = ImageFont.truetype(
        str(FONT_DIR / files[rng.integers(len(files))]), int(rng.integers(50, 80))
    )
    return _typeset(characters[rng.integers(len(characters))], font)


def _polygon(rng):
    """A triangle or a four-sided outline, at any angle."""
    image, draw = _canvas()
    sides = int(rng.choice([3, 4]))  # five or six sides drawn round at 28 px are a 0
    # Corners at least half the regular spacing apart: a sliver of a polygon is a 1.
    spacing = 2 * np.pi / sides
    angles = np.arange(sides) * spacing + rng.uniform(-0.25, 0.25, sides) * spacing
    angles += rng.uniform(0, 2 * np.pi)
    stretch = rng.uniform(0.6, 1.0)
    points = np.stack([np.cos(angles), np.sin(angles) * stretch], 1) * 40 + 56
    _stroke(draw, np.vstack([points, points[:1]]))
    return image


def _marked_loop(rng):
    """A closed curve with two or three marks inside it: the family of faces and eyes.
    The marks are strokes, not dots: thinned to pen paths, a dot would vanish and leave a
    plain loop, which is a 0."""
    image, draw = _canvas()
    t = np.linspace(0, 2 * np.pi, 40)
    rx, ry = rng.uniform(32, 48), rng.uniform(32, 48)
    wobble = 1 + 0.08 * np.sin(3 * t + rng.uniform(0, 6))
    _stroke(draw, np.stack([56 + rx * wobble * np.cos(t), 56 + ry * wobble * np.sin(t)], 1))
    for _ in range(int(rng.integers(2, 4))):  # eyes, a mouth: no bar across (a 0 with a
        x, y = 56 + rng.uniform(-0.45, 0.45, 2) * np.array([rx, ry])  # slash is still a 0)
        r = rng.uniform(0.2, 0.4) * min(rx, ry)
        sweep = rng.uniform(0.3, 1.0) * np.pi  # from a short dash to a half circle
        arc = np.linspace(0, sweep, 12) + rng.uniform(0, 2 * np.pi)
        _stroke(draw, np.stack([x + r * np.cos(arc), y + r * np.sin(arc)], 1), SKETCH_PEN - 2)
    return image


def _flat_line(rng):
    """One straight stroke, anywhere from a dash to a diagonal, never near vertical (a 1)."""
    image, draw = _canvas()
    angle = np.deg2rad(rng.uniform(-40, 40))  # from horizontal
    dx, dy = 48 * np.cos(angle), 48 * np.sin(angle)
    _stroke(draw, [(56 - dx, 56 - dy), (56 + dx, 56 + dy)])
    return image


def _scribble(rng):
    """A random scrawl: a wandering pen with momentum, crossing itself."""
    image, draw = _canvas()
    heading = rng.uniform(0, 2 * np.pi)
    turn_rate = rng.uniform(0.4, 1.0)
    point, points = np.array([56.0, 56.0]), []
    for _ in range(int(rng.integers(50, 120))):  # long: a short bent stroke could be a 7 or a 2
        heading += rng.normal(0, turn_rate)
        point = np.clip(point + 6 * np.array([np.cos(heading), np.sin(heading)]), 10, 102)
        points.append(point.copy())
    _stroke(draw, points)
    return image


def _zigzag(rng):
    """A zigzag or wave of four to eight turns: a signature, mountains, a spring."""
    image, draw = _canvas()
    turns = int(rng.integers(5, 10))
    xs = np.linspace(10, 102, turns + 1)
    ys = 56 + np.where(np.arange(turns + 1) % 2 == 0, -1, 1) * rng.uniform(10, 40, turns + 1)
    points = np.stack([xs, ys], 1)
    if turns >= 7 and rng.random() < 0.5:
        points = points[:, ::-1]  # a spring; a short vertical zigzag would be a 3 or a 2
    _stroke(draw, points)
    return image


def _bars(rng):
    """Two to four straight strokes crossing or side by side: = + # x and friends."""
    image, draw = _canvas()
    count = int(rng.integers(2, 5))
    first = rng.uniform(0, np.pi)
    for i in range(count):
        angle, beside = first, False
        if i:  # the others cross the first at 20 degrees or more, or lie beside it: never
            turn = rng.uniform(20, 160) * np.pi / 180  # one thick bar, which is a 1
            beside = rng.random() < 0.3
            angle = first if beside else first + turn
        centre = 56 + rng.uniform(-20, 20, 2)
        if beside:  # a clear gap away
            normal = np.array([-np.sin(first), np.cos(first)])
            centre = 56 + normal * rng.choice([-1, 1]) * rng.uniform(18, 30)
        d = rng.uniform(25, 45) * np.array([np.cos(angle), np.sin(angle)])
        _stroke(draw, [centre - d, centre + d])
    return image


# Digits in styles that few MNIST writers used, for the reader to learn them too: as
# typesetters draw them (a 1 with a flag and a foot, closed 4s, the small counters of bold 6s
# and 9s), and the 1 with a flag and no foot that most of Europe writes: MNIST's American
# writers seldom drew it, and the model read it as a 7. Sans and serif faces only: the mono
# 0 has a dot inside, and a loop with a mark inside is a face (see _marked_loop).
DIGIT_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
)
DIGIT_FONT_SIZES = (40, 60, 80)  # pixels at SKETCH_SIDE: each rasterises its curves differently
FLAGGED_ONES = 120


def digit_styles(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every digit in every DIGIT_FONT_FILES face and size, and FLAGGED_ONES flagged 1s,
    MNIST-style (N, 1, 28, 28), with their labels. Training redraws and moves them as it
    does MNIST's digits."""
    pictures, labels = [], []
    for file in DIGIT_FONT_FILES:
        for size in DIGIT_FONT_SIZES:
            font = ImageFont.truetype(str(FONT_DIR / file), size)
            for digit in range(10):
                pictures.append(preprocess.to_model_input(_typeset(str(digit), font))[0])
                labels.append(digit)
    rng = np.random.default_rng(seed)
    for _ in range(FLAGGED_ONES):
        pictures.append(preprocess.to_model_input(_flagged_one(rng))[0])
        labels.append(1)
    return torch.stack(pictures), torch.tensor(labels)


def _flagged_one(rng):
    """A 1 with a flag: a stem, and from its top a short stroke down to the left, steeper
    and shorter than a 7's bar."""
    image, draw = _canvas()
    lean = np.deg2rad(rng.uniform(-5, 20))  # the top to the right of the foot
    top = np.array([56 + 40 * np.sin(lean), 16.0])
    foot = np.array([56 - 40 * np.sin(lean), 96.0])
    flag = np.deg2rad(rng.uniform(25, 55)) + lean  # from the stem, towards the lower left
    length = rng.uniform(0.15, 0.5) * 80
    tip = top + length * np.array([-np.sin(flag), np.cos(flag)])
    _stroke(draw, [tip, top, foot])
    return image


# Segmentation junk, for outlier exposure too: what a search for where digits end gets when
# it groups or cuts a number wrong (LeCun et al., 1998, heuristic over-segmentation). The
# search reads every candidate glyph, and a wrong one must read "not a digit" so that its
# path loses; and two touching digits, which segment.py leaves as one piece, must read "not
# a digit" rather than one wrong digit.
# Made from MNIST *training* digits only (the test set measures), drawn on a canvas and made
# MNIST-like by preprocess.py as the app's input is. What a person could read as a digit is
# left out: any piece of a 1 (it is a 1), any half of a 0 (a bracket, a curved 1), and the
# halves that are often a digit themselves: the right half of a 3 or an 8 (a 3), of a 4 or a
# 9 (a stem: a 1), of a 2 or a 5 (a bracket with a tail), the left half of a 6, and either
# half of a 7, and the left halves of 4s, 5s and 9s: with a slanting stem or a narrow bowl,
# they are still a 7, a 4, a 5 or a 9 (checked by eye on contact sheets).
HALVES = {"left": (2, 3, 8), "right": (6,)}
HALF_INK = (0.25, 0.5)  # share of the digit's ink a half keeps: more, and the loop of a 9 or
# most of a 2 is left, a digit still; a meaningful share of the ink is cut away
MIN_HALF_ASPECT = 0.4  # width / height: a narrower half is one upright stroke, a 1
SLICE_INK = (0.2, 0.45)  # of the neighbour's ink that comes with a digit: more than a dot
MAX_OVERLAP = 0.3  # of the narrower digit's width that two touching digits may overlap by
JUNK_SCALE = 4  # MNIST's 28 px drawn at 112 px, the sketch canvas's size, before preprocess
JUNK_MARGIN = 28  # px of paper around the junk at 28 px scale: the ink stays a minority
# Taps, dabs, short thick ticks and small scribbles: marks whose shape is the pen itself, so
# training moves them about but never redraws them with another pen (`augment`'s
# redraw_fraction). A round dab 14-28 px wide on the 112 px canvas, dragged up to two widths;
# never an upright mark more than twice as long as wide, which a thick-brushed 1 is.
MARK_PEN = (14, 28)
MAX_DRAG = 2.0  # pen widths
MAX_UPRIGHT_ELONGATION = 2.0  # length / width of the ink (its principal axes)...
UPRIGHT_DEG = 40  # ...for a mark whose long axis is this close to vertical (1s slant)


def segmentation_junk(
    images: torch.Tensor, labels: torch.Tensor, count: int, seed: int
) -> torch.Tensor:
    """`count` MNIST-style pictures (N, 1, 28, 28) of wrong cuts through numbers written with
    `images` (MNIST training digits, uint8 (M, 28, 28)) and their `labels`: half a digit, a
    digit with a slice of its neighbour, and two touching digits seen as one glyph, a third
    each."""
    rng = np.random.default_rng(seed)
    digits, labels = images.numpy(), labels.numpy()
    makers = [_half_digit, _digit_with_slice, _touching_pair]
    pictures = []
    while len(pictures) < count:
        ink = makers[len(pictures) % len(makers)](rng, digits, labels)
        x = None if ink is None else preprocess.to_model_input(_on_paper(ink))
        if x is not None:
            pictures.append(x[0])
    return torch.stack(pictures)


def marks(count: int, seed: int) -> torch.Tensor:
    """`count` MNIST-style pictures (N, 1, 28, 28) of taps, dabs, short thick ticks and small
    scribbles: a round pen put down and moved a little."""
    rng = np.random.default_rng(seed)
    pictures = []
    while len(pictures) < count:
        image = _mark(rng)
        if _like_a_one(np.asarray(image) < 128):
            continue
        pictures.append(preprocess.to_model_input(image)[0])
    return torch.stack(pictures)


def _like_a_one(ink: np.ndarray) -> bool:
    """Whether the ink is an upright bar: long for its width (the ratio of its principal
    axes) and within UPRIGHT_DEG of vertical."""
    rows, cols = np.nonzero(ink)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(np.stack([rows, cols])))
    elongation = np.sqrt(eigenvalues[1] / max(eigenvalues[0], 1e-6))
    row_part = abs(eigenvectors[0, 1])  # the long axis's cosine with the vertical
    return elongation > MAX_UPRIGHT_ELONGATION and row_part > np.cos(np.deg2rad(UPRIGHT_DEG))


def _half_digit(rng, digits, labels):
    """One side of a digit cut at a vertical line, keeping HALF_INK of its ink."""
    side = "left" if rng.random() < 0.8 else "right"
    index = _pick(rng, labels, HALVES[side])
    digit = digits[index].astype(np.float32)
    kept = _cut(digit, rng.uniform(*HALF_INK), side)
    rows, cols = np.nonzero(kept.any(1))[0], np.nonzero(kept.any(0))[0]
    if cols[-1] - cols[0] + 1 < MIN_HALF_ASPECT * (rows[-1] - rows[0] + 1):
        return None
    return kept


def _digit_with_slice(rng, digits, labels):
    """A whole digit, never a 1 (a 1 with a stroke at its side is a flagged 1 or a 7), and
    the near side of its neighbour (SLICE_INK of it), touching."""
    digit = digits[_pick(rng, labels, (0, 2, 3, 4, 5, 6, 7, 8, 9))].astype(np.float32)
    neighbour = digits[rng.integers(len(digits))].astype(np.float32)
    if rng.random() < 0.5:  # the neighbour on the right: its left side comes along
        return _side_by_side(digit, _cut(neighbour, rng.uniform(*SLICE_INK), "left"), rng)
    return _side_by_side(_cut(neighbour, rng.uniform(*SLICE_INK), "right"), digit, rng)


def _touching_pair(rng, digits, labels):
    """Two whole digits that touch or overlap a little, read as one glyph."""
    left, right = digits[rng.integers(len(digits), size=2)].astype(np.float32)
    return _side_by_side(left, right, rng)


def _pick(rng, labels, allowed) -> int:
    while True:
        index = int(rng.integers(len(labels)))
        if labels[index] in allowed:
            return index


def _cut(digit: np.ndarray, share: float, side: str) -> np.ndarray:
    """The `side` of the digit up to the column where `share` of its ink is reached."""
    column_ink = np.cumsum(digit.sum(0) if side == "left" else digit.sum(0)[::-1])
    column = int(np.searchsorted(column_ink, share * column_ink[-1])) + 1
    kept = np.zeros_like(digit)
    if side == "left":
        kept[:, :column] = digit[:, :column]
    else:
        kept[:, -column:] = digit[:, -column:]
    return kept


def _side_by_side(left: np.ndarray, right: np.ndarray, rng) -> np.ndarray:
    """The two pictures' ink on one strip, the right one's ink starting where the left's
    ends, give or take: from a 1 px gap to an overlap of MAX_OVERLAP of the narrower ink."""
    (l0, l1), (r0, r1) = _columns(left), _columns(right)
    overlap = rng.uniform(-1, MAX_OVERLAP * min(l1 - l0, r1 - r0))
    start = int(round(l1 - overlap)) - r0  # where the right picture's column 0 goes
    strip = np.zeros((IMAGE_SIZE, max(IMAGE_SIZE, start + IMAGE_SIZE)), np.float32)
    strip[:, :IMAGE_SIZE] = left
    shift = int(rng.integers(-3, 4))  # digits of a number are seldom exactly level
    strip[:, start : start + IMAGE_SIZE] = np.maximum(
        strip[:, start : start + IMAGE_SIZE], np.roll(right, shift, axis=0)
    )
    return strip


def _columns(picture: np.ndarray) -> tuple[int, int]:
    cols = np.nonzero(picture.any(0))[0]
    return int(cols[0]), int(cols[-1]) + 1


def _on_paper(ink: np.ndarray) -> Image.Image:
    """White-on-black ink (0-255) as dark ink on a sketch-sized sheet of paper."""
    padded = np.pad(ink, JUNK_MARGIN)
    image = Image.fromarray(255 - np.clip(padded, 0, 255).astype(np.uint8))
    return image.resize((image.width * JUNK_SCALE, image.height * JUNK_SCALE), Image.BILINEAR)


def _mark(rng):
    """A tap, a dab dragged a little, a short tick or a small scribble, with a thick pen."""
    image, draw = _canvas()
    pen = int(rng.integers(*MARK_PEN))
    kind = rng.integers(4)
    start = np.array([56.0, 56.0])
    if kind == 0:  # a tap
        points = [start, start]
    elif kind == 1:  # a dab, dragged
        heading = rng.uniform(0, 2 * np.pi)
        points = [start, start + rng.uniform(0.2, MAX_DRAG) * pen * _unit(heading)]
    elif kind == 2:  # a short tick: two strokes at an angle, 1 to 2.5 pens long in all
        heading, turn = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2.0) * rng.choice([-1, 1])
        first, second = rng.uniform(0.5, 1.25, 2) * pen
        middle = start + first * _unit(heading)
        points = [start, middle, middle + second * _unit(heading + turn)]
    else:  # a small scribble: a few steps of a wandering pen, within about two pens
        points, heading = [start], rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 7))):
            heading += rng.normal(0, 1.5)
            points.append(points[-1] + rng.uniform(0.3, 0.6) * pen * _unit(heading))
    points = np.array(points)
    _stroke(draw, points - points.mean(0) + SKETCH_SIDE / 2, pen)  # centred: all on the canvas
    return image


def _unit(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])
