"""Where each digit ends: the model judges the cuts (recognition-based segmentation).

After LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to
document recognition", section V (heuristic over-segmentation, the segmentation graph and
its best path), as their cheque reader did:

    the ink's pieces (preprocess.pieces: connected ink, specks and dabs dropped, dots joined)
    -> candidate cuts through each piece: straight cuts at the valleys of its vertical
       ink profile (thin necks, the joint where two digits touch)
    -> atoms: the ink between cuts, and whole pieces, ordered left to right
    -> candidate glyphs: one atom, or neighbouring atoms together (a whole piece, pieces
       drawn after a pen lift, part of a piece between two cuts), when no wider than a digit
    -> every candidate read by the model, in one batch
    -> the best path through the atoms (dynamic programming, left to right): the glyphs
       that use every atom once with the least cost, each glyph costing the model's
       surprise at it, -log(its top probability), plus GLYPH_COST (and SHORT_COST for
       a part cut through ink that is short, or not a sure digit: a cut must earn its place)

The path's glyphs are what reading.py judges: each is a digit, or "not a digit" when its
top probability is below the weights' threshold. The cost is the model's own surprise,
so a bad cut (half a digit, a digit with a piece of its neighbour, two digits as one)
loses to the good one when the model reads the bad one as unsure: the better the reader
refuses such junk, the better the search. GLYPH_COST is the prior against splitting one
digit into several that each look like a digit. Still out of reach: digits written over
each other, and joined-up writing, where no straight cut separates two digits.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

import preprocess
from preprocess import Glyph, Ink

# Each measured by benchmarks/heldout.py and the MNIST training set (README, "Reading a number").
GLYPH_COST = 0.6  # nats each glyph costs beyond the model's surprise: the prior against
#                   reading one digit as several (0.3 split more non-digits into "digits",
#                   1.0 merged more touching digits into one glyph)
SHORT_COST = 10.0  # nats for a glyph cut from a piece that is less than MIN_PART_HEIGHT of its
#                    height, or that reads as a digit with less than CUT_CONFIDENCE: such a
#                    glyph is taken only when nothing else covers its ink
MIN_PART_HEIGHT = 0.5  # digits in a number are of a size: a cut part shorter than half its
#                        piece is a piece of a digit (an L's foot, an A's leg)
CUT_CONFIDENCE = 0.6  # a cut through ink must earn its place: each side a digit, read at
#                       least this surely. Letters and shapes cut into parts often read unsure;
#                       touching digits cut at the joint read sure (a 1 and a 0: 1.0 and 0.64)
SPLIT_ASPECT = 0.9  # a piece narrower than this times its height is not cut (a 1 touching a
#                    0 is 0.97). Cutting narrower pieces splits more letters into digit-like
#                    parts. heldout.py --count 100 --seed 2, non-digits declined / touching
#                    numbers exact: 0.7 and any cut 74-79% / 41-46%; 0.9 and 0.6 (these)
#                    82.4% / 39.0%; 1.0 and 0.9 86.2% / 35.7%; never cut 92.2% / 0.3%
MIN_PART_PENS = 1.0  # each side of a cut spans at least a pen width across...
MIN_PART_WIDTH = 0.1  # ...and this share of the piece's height (a 1 is narrow, not a sliver)
CUT_WINDOW = 0.5  # a valley of the ink profile is its lowest within this many pen widths...
VALLEY_REACH = 0.5  # ...and at least PROMINENCE_PENS below the highest ink within this share
PROMINENCE_PENS = 0.5  # of the height on both sides (a joint between two shapes, not a bar)
MAX_SPAN = 8  # atoms in one glyph (a digit cut at several valleys, or drawn in pieces)
MAX_ATOMS = 32  # beyond this the drawing is scribbling or text: not searched (4 atoms a digit)
MAX_ASPECT = 1.7  # a glyph of several atoms wider than this times its height is not one digit:
#                   99.9% of MNIST's 60,000 training digits are narrower than 1.67
MAX_GAP = 0.35  # nor one whose atoms leave a blank wider than this share of its height
MAX_GAP_PENS = 1.5  # or than this many pen widths: a pen lift within a digit leaves
#                     less (the hand comes back to where it left off), a number more

Classify = Callable[[torch.Tensor], torch.Tensor]  # (N, 1, 28, 28) -> (N, 10) probabilities


class Segmentation(NamedTuple):
    """The glyphs on the best path, left to right, and the model's probabilities for them."""

    glyphs: list[Glyph]
    probabilities: torch.Tensor | None  # (len(glyphs), 10); None when there were too many atoms


def segment(ink: Ink, classify: Classify) -> Segmentation:
    """The best segmentation of the ink into glyphs, as the model reads them.

    `classify` maps (N, 1, 28, 28) inputs in [0, 1] to (N, 10) probabilities; it is called
    once. No ink gives no glyphs; more than MAX_ATOMS atoms give one glyph a piece, unread.
    """
    pieces = preprocess.pieces(ink)
    atoms, piece_of = _atoms(pieces)
    count = len(piece_of)
    if count == 0:
        return Segmentation([], torch.empty(0, 10))
    if count > MAX_ATOMS:  # the pieces themselves, for callers that count them
        unread = [
            preprocess.glyph(ink, pieces.labels[t:b, lo:hi] == k + 1, (t, b, lo, hi))
            for k, (t, b, lo, hi) in enumerate(pieces.boxes)
        ]
        return Segmentation(sorted(unread, key=_centre), None)
    spans, short, cut = _candidates(atoms, piece_of, pieces)
    boxes = _boxes(atoms)
    glyphs = [_glyph(ink, atoms, boxes, span) for span in spans]
    probabilities = classify(torch.cat([g.input for g in glyphs]))
    top = probabilities.max(dim=1).values
    surprise = -torch.log(top.clamp_min(1e-12))
    unsure_cut = torch.tensor(cut) & (top < CUT_CONFIDENCE)
    penalty = torch.tensor(short, dtype=surprise.dtype) + unsure_cut.to(surprise.dtype)
    costs = GLYPH_COST + surprise + SHORT_COST * penalty
    path = _best_path(count, spans, costs.tolist())
    return Segmentation([glyphs[k] for k in path], probabilities[path])


def _atoms(pieces: preprocess.Pieces) -> tuple[np.ndarray, np.ndarray]:
    """Each piece cut where touching digits may join: the atom of every ink pixel, numbered
    1, 2, ... left to right (by the centre of their boxes), 0 on paper; and the piece
    (0, 1, ...) each atom comes from."""
    atoms = np.zeros_like(pieces.labels)
    piece_of = []
    for k, (top, bottom, left, right) in enumerate(pieces.boxes):
        own = pieces.labels[top:bottom, left:right] == k + 1
        cuts = _cuts(own, pieces.pen)
        part = np.searchsorted(cuts, np.arange(right - left), side="right")  # of each column
        atoms[top:bottom, left:right][own] = len(piece_of) + 1 + part[np.nonzero(own)[1]]
        piece_of += [k] * (len(cuts) + 1)
    if not piece_of:
        return atoms, np.zeros(0, int)
    found = ndimage.find_objects(atoms)
    present = [i for i, s in enumerate(found) if s is not None]  # a cut may leave a part empty
    centres = [(found[i][1].start + found[i][1].stop) / 2 for i in present]
    ranked = np.array(present)[np.argsort(centres, kind="stable")]
    order = np.zeros(len(found) + 1, int)
    order[ranked + 1] = np.arange(1, len(ranked) + 1)
    return order[atoms], np.array(piece_of)[ranked]


def _cuts(own: np.ndarray, pen: float) -> list[int]:
    """Where a piece (a boolean ink crop) may be two digits or more: the columns (each the
    first of the part right of the cut) at the valleys of its vertical ink profile, where
    a neck or a thin joint holds two shapes together. A valley is the profile's lowest
    within CUT_WINDOW pen widths, PROMINENCE_PENS below its highest within VALLEY_REACH of
    the height on both sides, and leaves a part of at least a pen width (MIN_PART_PENS) and
    MIN_PART_WIDTH of the height on either side; a flat valley is cut in its middle, and
    cuts are a pen width apart at least, the deepest first."""
    height, width = own.shape
    min_part = max(MIN_PART_PENS * pen, MIN_PART_WIDTH * height)
    if width < max(2 * min_part, SPLIT_ASPECT * height):
        return []
    profile = own.sum(axis=0)
    reach = max(1, int(CUT_WINDOW * pen))
    lowest = ndimage.minimum_filter1d(profile, 2 * reach + 1, mode="nearest")
    side = max(1, int(VALLEY_REACH * height))
    before = ndimage.maximum_filter1d(profile, side, origin=(side - 1) // 2, mode="nearest")
    after = ndimage.maximum_filter1d(profile[::-1], side, origin=(side - 1) // 2, mode="nearest")
    deep = np.minimum(before, after[::-1]) - profile >= PROMINENCE_PENS * pen
    columns = np.arange(width)
    valleys = np.flatnonzero(
        deep & (profile <= lowest) & (columns >= min_part) & (columns <= width - min_part)
    )
    runs = np.split(valleys, np.flatnonzero(np.diff(valleys) > 1) + 1) if valleys.size else []
    kept: list[int] = []
    for column in sorted((int(run[len(run) // 2]) for run in runs), key=lambda c: profile[c]):
        if all(abs(column - other) >= pen for other in kept):
            kept.append(column)
    return sorted(kept)


def _boxes(atoms: np.ndarray) -> np.ndarray:
    """Each atom's box: (count, 4) top, bottom, left, right (exclusive)."""
    found = ndimage.find_objects(atoms)
    return np.array([(r.start, r.stop, c.start, c.stop) for r, c in found]).reshape(-1, 4)


def _candidates(
    atoms: np.ndarray, piece_of: np.ndarray, pieces: preprocess.Pieces
) -> tuple[list[tuple[int, int]], list[bool], list[bool]]:
    """The runs of neighbouring atoms (first, last + 1) that may be one glyph: every atom
    alone, and up to MAX_SPAN together when they are no wider than a digit (MAX_ASPECT)
    and leave no blank wider than MAX_GAP of their height between them; and for each,
    whether it is short: part of a piece, less than MIN_PART_HEIGHT of that piece's height
    (an L's foot, an A's leg: digits in a number are of a size); and whether it is cut:
    part of a piece, not all of it."""
    boxes, piece_boxes = _boxes(atoms), pieces.boxes
    heights = piece_boxes[:, 1] - piece_boxes[:, 0]
    atoms_in = np.bincount(piece_of, minlength=len(piece_boxes))
    spans, short, cuts = [], [], []
    for first in range(len(boxes)):
        for last in range(first + 1, min(first + MAX_SPAN, len(boxes)) + 1):
            run = boxes[first:last]
            height = run[:, 1].max() - run[:, 0].min()
            width = run[:, 3].max() - run[:, 2].min()
            if last - first > 1 and (
                width > MAX_ASPECT * height
                or _widest_blank(run) > min(MAX_GAP * height, MAX_GAP_PENS * pieces.pen)
            ):
                break  # a longer run is wider still
            taken = np.bincount(piece_of[first:last], minlength=len(piece_boxes))
            cut = (taken > 0) & (taken < atoms_in)
            spans.append((first, last))
            short.append(bool(cut.any() and height < MIN_PART_HEIGHT * heights[cut].max()))
            cuts.append(bool(cut.any()))
    return spans, short, cuts


def _widest_blank(boxes: np.ndarray) -> float:
    """The widest stretch of columns that none of the boxes covers, between their ends."""
    widest, reach = 0, None
    for left, right in sorted(zip(boxes[:, 2], boxes[:, 3], strict=True)):
        if reach is not None:
            widest = max(widest, left - reach)
        reach = right if reach is None else max(reach, right)
    return widest


def _glyph(ink: Ink, atoms: np.ndarray, boxes: np.ndarray, span: tuple[int, int]) -> Glyph:
    """The glyph of atoms span[0] + 1 to span[1] (their labels), cropped to their ink."""
    first, last = span
    run = boxes[first:last]
    box = (int(run[:, 0].min()), int(run[:, 1].max()), int(run[:, 2].min()), int(run[:, 3].max()))
    region = atoms[box[0] : box[1], box[2] : box[3]]
    return preprocess.glyph(ink, (region > first) & (region <= last), box)


def _best_path(count: int, spans: list[tuple[int, int]], costs: list[float]) -> list[int]:
    """Viterbi over the atoms, left to right: the candidates (indices into spans) that
    cover atoms 0 to count - 1 once each, in order, with the least total cost."""
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


def _centre(glyph: Glyph) -> float:
    return glyph.box[0] + glyph.box[2]
