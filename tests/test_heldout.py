"""The held-out drawings are what they claim, and the model reads them as it should."""

import numpy as np
import pytest
from scipy import ndimage

import preprocess
import reading
from harness import heldout
from model import read_metadata

COUNT = 12  # per set: enough to meet every kind of make, fast enough to run always


def ink_mask(picture) -> np.ndarray:
    """Where a drawing has ink: opaque on a transparent canvas, not white on a white one."""
    array = np.asarray(picture)
    if array.ndim == 2:  # an MNIST image: white on black
        return array > 0
    if array.shape[2] == 4:
        return array[..., 3] > 0
    return array.min(axis=2) < 255


def all_sets(mnist_test, count=COUNT, seed=0):
    images, labels = (t.numpy() for t in mnist_test)
    sets = {kind: list(heldout.non_digits(kind, count, seed)) for kind in heldout.NON_DIGIT_KINDS}
    sets["Hershey digits"] = list(heldout.hershey_digits(count, seed))
    sets["UCI digits"] = list(heldout.uci_digits(count, seed))
    sets["drawn MNIST"] = list(heldout.mnist_drawn(images, labels, count, seed))
    sets["MNIST test"] = list(heldout.mnist_plain(images, labels, count, seed))
    if heldout.handwriting_fonts()[0]:  # Debian's handwriting fonts, where installed
        sets["handwriting fonts"] = list(heldout.handwriting_digits(count, seed))
    for length in (2, 3, 4):
        sets[f"{length}-digit numbers"] = list(heldout.numbers(images, labels, length, count, seed))
    return sets


@pytest.fixture(scope="module")
def drawn(mnist_test):
    return all_sets(mnist_test)


def test_the_same_seed_draws_the_same_pictures(mnist_test, drawn):
    again = all_sets(mnist_test, count=3)
    other = all_sets(mnist_test, count=3, seed=1)
    for name, drawings in again.items():
        for first, second, different in zip(drawn[name], drawings, other[name], strict=False):
            assert np.array_equal(np.asarray(first.picture), np.asarray(second.picture)), name
            assert first.name == second.name and first.text == second.text
            assert not np.array_equal(np.asarray(first.picture), np.asarray(different.picture))


def test_every_drawing_is_ink_on_a_canvas_the_app_can_read(drawn):
    for name, drawings in drawn.items():
        assert len(drawings) == COUNT
        for d in drawings:
            assert d.kind == name
            ink = ink_mask(d.picture)
            assert 0.001 < ink.mean() < 0.6, (name, d.name)  # ink, on paper
            assert preprocess.to_model_input(d.picture) is not None, (name, d.name)
            if name == "MNIST test":
                assert d.picture.shape == (28, 28) and d.picture.dtype == np.uint8
            else:
                assert d.picture.mode in ("RGB", "RGBA"), (name, d.name)
    canvases = {d.picture.mode for name in heldout.NON_DIGIT_KINDS for d in drawn[name]}
    assert canvases == {"RGB", "RGBA"}  # white and transparent canvases, as the app gets


def test_labels_say_what_is_drawn(drawn):
    for kind in heldout.NON_DIGIT_KINDS:
        assert all(d.text is None for d in drawn[kind])
        assert len({d.name for d in drawn[kind]}) >= 4  # many different things
    for name in ("Hershey digits", "UCI digits", "drawn MNIST", "MNIST test", "handwriting fonts"):
        assert all(len(d.text) == 1 and d.text.isdigit() for d in drawn.get(name, []))
    for length in (2, 3, 4):
        assert all(
            len(d.text) == length and d.text.isdigit() for d in drawn[f"{length}-digit numbers"]
        )


def test_letters_leave_out_digit_look_alikes(drawn):
    for d in drawn["letters"]:
        assert d.name.split()[-1] not in "OoIlSsZzBbgqijQ"
    assert not set(heldout.LETTERS) & set("OoIlSsZzBbgqijQ")


def test_numbers_are_wide_and_their_digits_do_not_touch(drawn):
    for length in (2, 3, 4):
        for d in drawn[f"{length}-digit numbers"]:
            width, height = d.picture.size
            assert width == 2 * height or width == 2 * height + 1
            assert len(d.boxes) == length
            lefts = [box[0] for box in d.boxes]
            assert lefts == sorted(lefts)
            for (_, _, right, _), (left, _, _, _) in zip(d.boxes, d.boxes[1:], strict=False):
                assert left - right >= 2, d.name  # a blank gap between neighbours
            # Every connected piece of ink lies within one digit's box: no two digits touch.
            pieces, count = ndimage.label(ink_mask(d.picture), structure=np.ones((3, 3)))
            for columns in ndimage.find_objects(pieces):
                _, cols = columns
                owners = [
                    i
                    for i, (left, _, right, _) in enumerate(d.boxes)
                    if cols.start >= left - 1 and cols.stop - 1 <= right + 1  # a pixel of rounding
                ]
                assert len(owners) == 1, (d.name, cols, d.boxes)


def test_the_shipped_model_declines_held_out_non_digits_and_reads_digits(mnist_test, model):
    threshold = float(read_metadata()["min_confidence"])
    images, labels = (t.numpy() for t in mnist_test)
    non_digits = [d for kind in ("shapes", "letters") for d in heldout.non_digits(kind, 25, 7)]
    declined = [
        reading.read(d.picture, model, threshold).status == "not_a_digit" for d in non_digits
    ]
    assert np.mean(declined) >= 0.8, f"{sum(declined)} of {len(declined)} non-digits declined"
    digits = list(heldout.mnist_drawn(images, labels, 50, 7))
    correct = [reading.read(d.picture, model, threshold).text == d.text for d in digits]
    assert np.mean(correct) >= 0.94, f"{sum(correct)} of {len(correct)} drawn digits read right"


def test_touching_numbers_touch_and_pen_lifts_leave_two_strokes(mnist_test):
    """The new sets are what they say: a touching number's digits join (fewer pieces of
    ink than digits, whatever pieces an MNIST digit has of its own) and their boxes
    overlap; a pen-lift digit is two pieces; taps and dabs are drawn whole on the canvas."""
    images, labels = (t.numpy() for t in mnist_test)
    for d in heldout.touching_numbers(images, labels, 3, 10, 5):
        _, count = ndimage.label(ink_mask(d.picture), structure=np.ones((3, 3)))
        assert count < len(d.text), d.name
        assert all(b[0] < a[2] for a, b in zip(d.boxes, d.boxes[1:], strict=False))
        assert np.asarray(d.picture).shape[:2] == heldout.APP_CANVAS[::-1]
    for d in heldout.pen_lift_digits(images, labels, 10, 5):
        _, count = ndimage.label(ink_mask(d.picture), structure=np.ones((3, 3)))
        assert count == 2 and len(d.text) == 1, d.name
    for kind in heldout.TAP_KINDS:
        for d in heldout.taps(kind, 5, 5):
            mask = ink_mask(d.picture)
            assert mask.any() and not (mask[0].any() or mask[-1].any()), kind
