"""Which ink makes each digit: the model judges the grouping (recognition-based segmentation).

After LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to
document recognition", section V (the segmentation graph and its best path), as their
cheque reader did, with the ink's pieces as the graph's atoms:

    the ink's pieces (`pieces`: connected ink, specks and dabs dropped, dots joined),
    ordered left to right
    -> candidate glyphs: one piece, or neighbouring pieces together (a digit drawn with a
       pen lift: a 9's stem beside its loop, a 4's bar short of its stem, a 5's top bar),
       when no wider than a digit and with no blank wider than a pen lift leaves
    -> every candidate read by the model, in one batch
    -> the best path (dynamic programming, left to right): the glyphs that use every piece
       once with the least cost, each glyph costing the model's surprise at it,
       -log(its top probability), plus GLYPH_COST

The path's glyphs are what reading.py judges: each is a digit, or "not a digit" when its
top probability is below the weights' threshold. The cost is the model's own surprise, so
a bad grouping (half a digit, a digit with a piece of its neighbour, two digits as one)
loses to the good one when the model reads the bad one as unsure: the better the reader
refuses such junk, the better the search. GLYPH_COST is the prior against reading one
digit's strokes as several digits.

Pieces are not cut: touching digits are one piece, read as one glyph (mostly "not a
digit"). Three kinds of cut were built and measured, and left out (docs/DESIGN.md, Touching
digits): straight cuts at the valleys of the ink profile, seams that follow the ink, and
cuts at the valleys of the profile and of the upper and lower contours with the reader
trained on what they leave. Each read some touching numbers by reading parts of letters
and shapes as digits too, so none kept "not a digit" at its goal while reading most
touching numbers, and the last made a 4-digit number several times the live budget's
candidate glyphs. Digits written over each other and joined-up writing are out of reach too.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

import preprocess
from preprocess import EIGHT_NEIGHBOURS, MIN_DIGIT_FRACTION, Glyph, Ink

# Each measured by benchmarks/heldout.py and the MNIST training set (docs/DESIGN.md: Segmentation).
GLYPH_COST = 0.6  # nats each glyph costs beyond the model's surprise: the prior against
#                   reading one digit's strokes as several digits
MAX_SPAN = 8  # pieces in one glyph (a digit drawn in several strokes)
MAX_PIECES = 32  # beyond this the drawing is scribbling or text: not searched
MAX_ASPECT = 1.7  # a glyph of several pieces wider than this times its height is not one
#                   digit: 99.9% of MNIST's 60,000 training digits are narrower than 1.67
MAX_GAP = 0.35  # nor one whose pieces leave a blank wider than this share of its height
MAX_GAP_PENS = 1.5  # or than this many pen widths: a pen lift within a digit leaves
#                     less (the hand comes back to where it left off), a number more

# What is a piece of a digit (`pieces`), and what a speck, a dot or a dab.
SPECK_SHARE = 0.2  # a piece under this share of the biggest piece's size is a speck, or a dot...
DOT_REACH = 0.15  # ...that belongs to a piece when this close to it (a share of the piece's size)
DAB_PENS = 1.75  # a piece spanning fewer pen widths than this is a tap or a dab, not a digit

Classify = Callable[[torch.Tensor], torch.Tensor]  # (N, 1, 28, 28) -> (N, 10) probabilities


class Pieces(NamedTuple):
    """The ink's connected pieces that may be (part of) a digit, dots joined to them."""

    labels: np.ndarray  # (H, W) int: 0 for paper and dropped specks, k for piece k's ink
    boxes: np.ndarray  # (count, 4) int: piece k + 1's top, bottom, left, right (exclusive)
    pen: float  # the stroke width, ink pixels


class Segmentation(NamedTuple):
    """The glyphs on the best path, left to right, and the model's probabilities for them."""

    glyphs: list[Glyph]
    probabilities: torch.Tensor | None  # (len(glyphs), 10); None when there were too many pieces


def segment(ink: Ink, classify: Classify) -> Segmentation:
    """The best grouping of the ink's pieces into glyphs, as the model reads them.

    `classify` maps (N, 1, 28, 28) inputs in [0, 1] to (N, 10) probabilities; it is called
    once. No ink gives no glyphs; more than MAX_PIECES pieces give one glyph a piece, unread.
    """
    found = pieces(ink)
    boxes = found.boxes  # top, bottom, left, right of piece k + 1
    order = np.argsort(boxes[:, 2] + boxes[:, 3], kind="stable")  # by the boxes' centres
    count = len(order)
    if count == 0:
        return Segmentation([], torch.empty(0, 10))
    if count > MAX_PIECES:  # the pieces themselves, for callers that count them
        unread = [_glyph(ink, found, order[k : k + 1]) for k in range(count)]
        return Segmentation(unread, None)
    spans = _candidates(boxes[order], found.pen)
    glyphs = [_glyph(ink, found, order[first:last]) for first, last in spans]
    probabilities = classify(torch.cat([g.input for g in glyphs]))
    surprise = -torch.log(probabilities.max(dim=1).values.clamp_min(1e-12))
    path = _best_path(count, spans, (GLYPH_COST + surprise).tolist())
    return Segmentation([glyphs[k] for k in path], probabilities[path])


def pieces(ink: Ink) -> Pieces:
    """The ink split into connected pieces (8-neighbours), specks dropped.

    A speck is a piece smaller than MIN_DIGIT_FRACTION of the picture, SPECK_SHARE of the
    biggest piece, or DAB_PENS pen widths (a tap, a dab, a tick: too short for any digit's
    shape); a speck within DOT_REACH of a piece (a dot, a smiley's eye) joins it.
    """
    strength = ink.strength
    labels, count = ndimage.label(strength > 0, structure=EIGHT_NEIGHBOURS)
    if count == 0:
        return Pieces(labels, np.zeros((0, 4), int), 0.0)
    boxes = np.array([(r.start, r.stop, c.start, c.stop) for r, c in ndimage.find_objects(labels)])
    sizes = np.maximum(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])
    pen = pen_width(strength > 0)
    least = max(MIN_DIGIT_FRACTION * max(strength.shape), SPECK_SHARE * sizes.max(), DAB_PENS * pen)
    big = sizes >= least
    keep = np.zeros(count + 1, int)  # each piece's new label: 0 drops it
    keep[1:][big] = np.arange(1, big.sum() + 1)
    specks = np.flatnonzero(~big)
    if big.any() and specks.size:  # a speck close to a piece is part of it; others go
        top, bottom, left, right = boxes[big].T
        y = (boxes[specks, 0:1] + boxes[specks, 1:2]) / 2  # one row per speck, a column a piece
        x = (boxes[specks, 2:3] + boxes[specks, 3:4]) / 2
        away = np.maximum(np.maximum(top - y, y - bottom), np.maximum(left - x, x - right))
        reach = away / sizes[big]
        near = reach.min(1) <= DOT_REACH
        keep[specks[near] + 1] = reach.argmin(1)[near] + 1
    labels = keep[labels]
    kept = [s for s in ndimage.find_objects(labels) if s is not None]
    boxes = np.array([(r.start, r.stop, c.start, c.stop) for r, c in kept]).reshape(-1, 4)
    return Pieces(labels, boxes, pen)


def pen_width(ink: np.ndarray) -> float:
    """The width of the strokes in a boolean ink picture, pixels: twice the median depth
    of the strokes' ridge (the pixels deepest across a stroke, by Euclidean distance to the
    paper). Junctions and ends barely move a median; a dab's ridge is its centre."""
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        return 0.0
    crop = np.pad(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
    depth = ndimage.distance_transform_edt(crop)
    ridge = depth[(depth > 0) & (depth >= ndimage.maximum_filter(depth, 3))]
    return float(2 * np.median(ridge))


def _candidates(boxes: np.ndarray, pen: float) -> list[tuple[int, int]]:
    """The runs of neighbouring pieces (first, last + 1; boxes in reading order) that may be
    one glyph: every piece alone, and up to MAX_SPAN together when they are no wider than a
    digit (MAX_ASPECT) and leave no blank between them wider than MAX_GAP of their height
    or MAX_GAP_PENS pen widths."""
    spans = []
    for first in range(len(boxes)):
        for last in range(first + 1, min(first + MAX_SPAN, len(boxes)) + 1):
            run = boxes[first:last]
            height = run[:, 1].max() - run[:, 0].min()
            width = run[:, 3].max() - run[:, 2].min()
            if last - first > 1 and (
                width > MAX_ASPECT * height
                or _widest_blank(run) > min(MAX_GAP * height, MAX_GAP_PENS * pen)
            ):
                break  # a longer run is wider still
            spans.append((first, last))
    return spans


def _widest_blank(boxes: np.ndarray) -> float:
    """The widest stretch of columns that none of the boxes covers, between their ends."""
    widest, reach = 0, None
    for left, right in sorted(zip(boxes[:, 2], boxes[:, 3], strict=True)):
        if reach is not None:
            widest = max(widest, left - reach)
        reach = right if reach is None else max(reach, right)
    return widest


def _glyph(ink: Ink, pieces: Pieces, members: np.ndarray) -> Glyph:
    """The glyph of the given pieces (indices into pieces.boxes), cropped to their ink."""
    run = pieces.boxes[members]
    box = (int(run[:, 0].min()), int(run[:, 1].max()), int(run[:, 2].min()), int(run[:, 3].max()))
    region = pieces.labels[box[0] : box[1], box[2] : box[3]]
    return preprocess.glyph(ink, np.isin(region, members + 1), box)


def _best_path(count: int, spans: list[tuple[int, int]], costs: list[float]) -> list[int]:
    """Viterbi over the pieces, left to right: the candidates (indices into spans) that
    cover pieces 0 to count - 1 once each, in order, with the least total cost."""
    best = [0.0] + [float("inf")] * count
    came = [-1] * (count + 1)
    for k in sorted(range(len(spans)), key=lambda k: spans[k][1]):
        first, last = spans[k]
        if best[first] + costs[k] < best[last]:
            best[last], came[last] = best[first] + costs[k], k
    path, end = [], count
    while end > 0:
        path.append(came[end])
        end = spans[came[end]][0]
    return path[::-1]
