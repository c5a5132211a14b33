"""Splitting a drawing into glyphs and reading them: real MNIST digits side by side on the
app's wide canvas, hand strokes (a 5 with a detached bar, a 4 in two strokes, a letter),
specks, and the reading's verdicts through the committed model."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import app
import preprocess
import reading
import segment
from harness.drawn import APP_CANVAS, APP_PEN, BOX_SLACK, number_canvas, paint
from harness.heldout import touching_canvas

CANVAS = app.CANVAS_SIZE  # width, height: what the sketchpad exports
PEN = 2 * app.BRUSH_RADIUS  # the sketchpad's stroke width, canvas pixels
NUMBERS = 12  # numbers of 2 to 4 MNIST test digits, drawn side by side
CASES = Path(__file__).resolve().parent.parent.parent / "shared" / "cases"  # ../shared/cases
TOUCHING_PAIRS = [(1, 0), (4, 7), (2, 3), (9, 1), (3, 8)]  # digits, by label


def glyphs(reader, canvas: np.ndarray) -> list[preprocess.Glyph]:
    """The glyphs the reading chose for a canvas (the search's best path)."""
    return reader.read(canvas).glyphs


def strokes_canvas(strokes, size: tuple[int, int] = CANVAS, pen: float = PEN) -> np.ndarray:
    """Strokes of (x, y) points in canvas pixels, drawn in black as the sketchpad draws them,
    on a transparent canvas."""
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    paint(canvas, strokes, pen, ink=(0, 0, 0))
    return np.asarray(canvas)


def placed(shape, left: float, top: float, side: float) -> list[list[tuple[float, float]]]:
    """Strokes given in fractions of a square, placed at (left, top) with that side."""
    return [[(left + x * side, top + y * side) for x, y in stroke] for stroke in shape]


def alone(canvas: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The canvas with only the ink inside `box`."""
    left, top, right, bottom = box
    only = np.zeros_like(canvas)
    only[top:bottom, left:right] = canvas[top:bottom, left:right]
    return only


# Shapes in fractions of their square. A 5 with its top bar drawn apart, off to the right,
# as a hurried hand draws it; a 4 whose stem, drawn second, misses the bar; a letter A.
FIVE = [
    [(0.3, 0.1), (0.25, 0.45), (0.55, 0.4), (0.72, 0.6), (0.65, 0.85), (0.4, 0.92), (0.22, 0.82)],
    [(0.45, 0.02), (0.85, 0.0)],
]
FOUR = [[(0.5, 0.05), (0.2, 0.55), (0.85, 0.55)], [(0.62, 0.66), (0.62, 0.98)]]
A = [[(0.15, 0.95), (0.5, 0.05), (0.85, 0.95)], [(0.3, 0.6), (0.7, 0.6)]]
# As most of Europe writes them, unlike MNIST's American writers: a 1 with a long flag (the
# previous weights read it as a 7), a 7 with a bar across (a stroke of its own).
ONE_WITH_FLAG = [[(0.25, 0.32), (0.6, 0.05), (0.55, 0.95)]]
SEVEN_WITH_BAR = [[(0.2, 0.1), (0.8, 0.1), (0.4, 0.95)], [(0.35, 0.5), (0.75, 0.5)]]
# Drawn after a pen lift: a 4 whose bar stops short of its stem, a 9 whose stem was drawn
# beside its loop.
OPEN_FOUR = [[(0.4, 0.05), (0.15, 0.55), (0.58, 0.55)], [(0.72, 0.02), (0.72, 0.98)]]
LIFTED_NINE = [
    [(0.4 + 0.25 * np.cos(a), 0.28 + 0.25 * np.sin(a)) for a in np.linspace(0, 6.3, 40)],
    [(0.72, 0.3), (0.7, 0.98)],
]
SMILEY = (
    [[(0.5 + 0.45 * np.cos(a), 0.5 + 0.45 * np.sin(a)) for a in np.linspace(0, 6.3, 40)]]
    + [[(0.35, 0.38)], [(0.65, 0.38)]]  # eyes: a dab of the pen each
    + [[(0.3 + 0.4 * t, 0.65 + 0.12 * np.sin(np.pi * t)) for t in np.linspace(0, 1, 12)]]
)


def test_the_harness_draws_on_the_apps_canvas():
    """harness/ draws without importing the app: its canvas and brush are copies of the app's."""
    assert APP_CANVAS == app.CANVAS_SIZE and APP_PEN == 2 * app.BRUSH_RADIUS


def test_digits_side_by_side_are_glyphs_in_reading_order(reader, mnist_test):
    """2 to 4 real digits on the wide canvas: one glyph each, left to right, each box
    around its digit in the canvas's pixels, and the number read."""
    images, labels = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(6)
    exact = 0
    for _ in range(NUMBERS):
        chosen = rng.choice(len(images), size=int(rng.integers(2, 5)), replace=False)
        canvas, boxes = number_canvas([images[i] for i in chosen], rng)
        found = glyphs(reader, canvas)
        assert len(found) == len(chosen)
        for glyph, box in zip(found, boxes, strict=True):
            assert np.abs(np.subtract(glyph.box, box)).max() <= BOX_SLACK, (glyph.box, box)
            assert glyph.input.shape == (1, 1, 28, 28)
        result = reader.read(canvas)
        truth = "".join(str(labels[i]) for i in chosen)
        exact += result.status == "number" and result.text == truth
        json = result.as_json()
        assert [d["box"] for d in json["digits"]] == [list(g.box) for g in found]
    assert exact >= NUMBERS - 1  # the reader is about 98% right on single drawn digits


@pytest.mark.parametrize("shape, digit", [(ONE_WITH_FLAG, "1"), (SEVEN_WITH_BAR, "7")])
def test_european_ones_and_sevens_are_read(reader, model, shape, digit):
    for side, left in [(220, 170), (120, 60), (60, 400)]:
        canvas = strokes_canvas(placed(shape, left, 40, side))
        assert reader.read(canvas).text == digit


def test_each_glyph_is_read_from_its_own_ink_only(reader, model):
    """A 2 whose base runs on under the 1 written after it (not touching): two glyphs whose
    boxes overlap, each read from what its shape alone gives, the other's ink masked out."""
    two = [[(100, 90), (160, 40), (220, 90), (110, 240), (330, 240)]]
    one = [[(300, 40), (300, 200)]]
    canvas = strokes_canvas(two + one)
    result = reader.read(canvas)
    assert result.text == "21"
    first, second = result.glyphs
    assert first.box[2] > second.box[0]  # the boxes do overlap
    for glyph, shape in [(first, two), (second, one)]:
        assert np.array_equal(glyph.input, preprocess.to_model_input(strokes_canvas(shape)))


@pytest.mark.parametrize("shape, digit", [(FIVE, "5"), (FOUR, "4")])
def test_a_digit_in_separate_strokes_is_one_glyph(reader, shape, digit):
    """A 5 with a detached top bar, a 4 in two strokes: one glyph, read as the digit,
    alone or as part of a number."""
    for side, left in [(220, 170), (200, 40)]:
        canvas = strokes_canvas(placed(shape, left, 40, side))
        (glyph,) = glyphs(reader, canvas)
        assert reader.read(canvas).text == digit
    two = strokes_canvas(placed(shape, 40, 40, 200) + placed(shape, 300, 50, 190))
    assert [g.box[0] < 280 for g in glyphs(reader, two)] == [True, False]
    assert reader.read(two).text == digit * 2


def test_specks_and_stray_clicks_are_ignored_and_dots_join_their_digit(mnist_test, reader):
    images, _ = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(1)
    canvas, boxes = number_canvas([images[0], images[1], images[2]], rng)
    clean = glyphs(reader, canvas)
    clicks = canvas.copy()
    far = [(x, y) for x in range(10, 560, 30) for y in range(10, 280, 30) if away(x, y, boxes)]
    for x, y in far[:: len(far) // 4][:4]:  # stray clicks: one brush dab each, away from ink
        clicks = np.maximum(clicks, strokes_canvas([[(x, y)]]))
    x, y = far[len(far) // 2]  # and a flick: bigger than a click, small beside the digits
    clicks = np.maximum(clicks, strokes_canvas([[(x, y), (x + 10, y - 6)]]))
    assert [g.box for g in glyphs(reader, clicks)] == [g.box for g in clean]
    left, top, right, bottom = boxes[1]
    dotted = np.maximum(canvas, strokes_canvas([[(right - 5, top - 4)]], pen=6))  # a pen slip
    assert len(glyphs(reader, dotted)) == len(clean)
    lone = strokes_canvas([[(280, 140)]])  # a lone click on an empty canvas
    assert glyphs(reader, lone) == [] and preprocess.to_model_input(lone) is None


def test_a_smiley_is_not_a_digit(reader, model):
    """Its eyes (dabs of the pen, inside the face) are part of it, not marks of their own:
    the face reads as no digit, whichever way the search groups its pieces."""
    canvas = strokes_canvas(placed(SMILEY, 180, 30, 220))
    result = reader.read(canvas)
    assert result.status == "not_a_digit"
    assert all(g.box[3] - g.box[1] > 110 for g in result.glyphs)  # no eye alone


def away(x: float, y: float, boxes, distance: float = 2 * PEN) -> bool:
    return all(
        max(left - x, x - right, top - y, y - bottom) > distance
        for left, top, right, bottom in boxes
    )


def test_a_letter_between_digits_is_its_own_glyph(mnist_test, reader):
    images, _ = (t.numpy() for t in mnist_test)
    canvas, boxes = number_canvas([images[0], images[1], images[2]], np.random.default_rng(2))
    letter = strokes_canvas(placed(A, 200, 70, 150))
    middle = alone(canvas, boxes[1])
    canvas = np.maximum(canvas - middle, letter)  # the A replaces the middle digit
    found = glyphs(reader, canvas)
    assert len(found) == 3
    assert found[1].box[0] >= 200 - PEN and found[1].box[2] <= 350 + PEN


def test_a_letter_between_digits_is_not_a_digit(reader, mnist_test, model):
    images, _ = (t.numpy() for t in mnist_test)
    canvas, boxes = number_canvas([images[0], images[1], images[2]], np.random.default_rng(2))
    canvas = np.maximum(canvas - alone(canvas, boxes[1]), strokes_canvas(placed(A, 200, 70, 150)))
    result = reader.read(canvas)
    assert result.status == "not_a_digit" and result.text is None
    assert result.is_digit() == [True, False, True]
    assert result.as_json()["digits"][1]["digit"] is None
    for shape in (A, SMILEY):
        drawn = reader.read(strokes_canvas(placed(shape, 180, 30, 220)))
        assert (drawn.status, drawn.message) == ("not_a_digit", reading.NOT_A_DIGIT)


def test_the_reading_of_numbers_digits_and_empty_canvases(reader, mnist_test, model):
    images, labels = (t.numpy() for t in mnist_test)
    rng = np.random.default_rng(3)
    one, _ = number_canvas([images[0]], rng)
    single = reader.read(one)
    assert (single.status, single.text, single.message) == ("digit", str(labels[0]), None)
    assert single.probabilities.shape == (1, 10) and single.is_digit() == [True]

    for blank in (np.zeros((280, 560, 4), np.uint8), None):
        empty = reader.read(blank)
        assert (empty.status, empty.text, empty.message) == ("empty", None, reading.HINT)
        assert empty.as_json() == {
            "status": "empty",
            "text": None,
            "digits": [],
            "message": reading.HINT,
        }

    # Nine digits are one too many: not read, with a message saying the limit.
    nine, _ = number_canvas([images[i] for i in range(9)], rng, size=(1440, 280))
    too_many = reader.read(nine)
    assert len(too_many.glyphs) == 9
    assert (too_many.status, too_many.text) == ("unreadable", None)
    assert "8" in too_many.message and too_many.as_json()["digits"] == []
    eight, _ = number_canvas([images[i] for i in range(8)], rng, size=(1120, 280))
    assert reader.read(eight).status == "number"


def test_a_glyph_below_the_threshold_makes_the_drawing_not_a_digit(mnist_test, model):
    """The verdict follows the threshold: at an impossible one nothing is a digit, and the
    JSON names no digit but keeps each glyph's confidence and box."""
    images, _ = (t.numpy() for t in mnist_test)
    canvas, _ = number_canvas([images[0], images[1]], np.random.default_rng(4))
    declined = reading.read(canvas, model, min_confidence=1.01)
    assert (declined.status, declined.text) == ("not_a_digit", None)
    assert declined.message == "The 1st and 2nd marks do not look like digits."
    for entry, glyph in zip(declined.as_json()["digits"], declined.glyphs, strict=True):
        assert entry["digit"] is None and 0 < entry["confidence"] <= 1
        assert entry["box"] == list(glyph.box)
    accepted = reading.read(canvas, model, min_confidence=0.0)
    assert accepted.status == "number" and accepted.is_digit() == [True, True]


def first_of(images: np.ndarray, labels: np.ndarray, digit: int) -> np.ndarray:
    return images[int(np.flatnonzero(labels == digit)[0])]


@pytest.mark.parametrize("pair", TOUCHING_PAIRS)
def test_a_touching_pair_is_one_mark_and_not_a_digit(reader, mnist_test, model, pair):
    """Two real digits drawn with the app's brush, the second touching and just overlapping
    the first: pieces are not cut (segment.py), so they are one glyph, and the reader, which
    trained on touching digits as non-digits, says so rather than guess a wrong digit."""
    images, labels = (t.numpy() for t in mnist_test)
    canvas, boxes = touching_canvas(
        [first_of(images, labels, d) for d in pair], np.random.default_rng(0), overlap=0.03
    )
    result = reader.read(canvas)
    assert (result.status, result.text, len(result.glyphs)) == ("not_a_digit", None, 1)
    (true_left, true_right) = boxes
    (box,) = [d["box"] for d in result.as_json()["digits"]]
    assert abs(box[0] - true_left[0]) <= BOX_SLACK and abs(box[2] - true_right[2]) <= BOX_SLACK


@pytest.mark.parametrize(
    "strokes, text",
    [(OPEN_FOUR, "4"), (LIFTED_NINE, "9"), (FIVE + [], "5")],
)
def test_digits_drawn_with_a_pen_lift(reader, model, strokes, text):
    """An open 4 whose bar stops short of its stem, a 9 whose stem is beside its loop: the
    strokes do not touch, and the search reads them as one digit, at any size or place."""
    for side, left, top in [(220, 170, 40), (150, 40, 100), (110, 420, 20)]:
        canvas = strokes_canvas(placed(strokes, left, top, side))
        result = reader.read(canvas)
        assert (result.status, result.text) == ("digit", text), (side, left)


def test_54_with_an_open_four(reader, model):
    canvas = strokes_canvas(placed(FIVE, 40, 40, 200) + placed(OPEN_FOUR, 270, 40, 200))
    result = reader.read(canvas)
    assert (result.status, result.text) == ("number", "54")
    assert result.glyphs[0].box[2] < result.glyphs[1].box[0]


@pytest.mark.parametrize("slide", [0, 6, 10, 20])
def test_a_smudge_is_no_digit(reader, model, slide):
    """A tap of the brush, dragged a little (a smudge), anywhere: no digit, never a 0."""
    for x, y in [(280, 140), (60, 230), (500, 40)]:
        canvas = strokes_canvas([[(x, y), (x + slide, y + slide / 2)]])
        result = reader.read(canvas)
        assert result.status in ("empty", "not_a_digit") and result.text is None


def test_a_letter_between_touching_digits_is_not_a_digit(reader, model):
    """A 1, an A whose feet touch it and the 7 after it: the A is still not a digit."""
    one, seven = [[(140, 40), (140, 240)]], [[(300, 60), (430, 60), (305, 240)]]
    strokes = one + placed(A, 112, 30, 220) + seven
    canvas = strokes_canvas(strokes)
    assert len(segment.pieces(preprocess.ink(canvas)).boxes) == 1  # it is all one piece
    result = reader.read(canvas)
    assert result.status == "not_a_digit" and result.text is None
    assert None in [d["digit"] for d in result.as_json()["digits"]]


def canvas_cases() -> list[dict]:
    with open(CASES / "manifest.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["input"] == "canvas"]


@pytest.mark.skipif(not CASES.is_dir(), reason="../shared/cases is not here")
@pytest.mark.parametrize("case", canvas_cases() if CASES.is_dir() else [], ids=lambda c: c["file"])
def test_shared_canvas_cases(reader, case):
    """Each drawing of ../shared/cases that comes from the sketchpad, through the app's own
    answer, reads as its manifest says."""
    picture = np.asarray(Image.open(CASES / case["file"]).convert("RGBA"))
    label, seen, json = reader.answer(picture)
    assert json["status"] in case["expected_status"].split("|")
    assert json["text"] == (case["expected_text"] or None)
