"""Where each digit ends: the model judges the cuts (recognition-based segmentation).

After LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to
document recognition", section V (heuristic over-segmentation, the segmentation graph and
its best path), as their cheque reader read amounts:

    the ink's pieces (preprocess.pieces: connected ink, specks and dabs dropped, dots joined)
    -> candidate cuts through each piece wider than a digit leans: seams, paths from its top
       to its bottom that cross the least ink (dynamic programming, as seam carving finds
       them: Avidan and Shamir, 2007), so a cut follows the gap between two digits that touch
       or overlap and crosses the ink only where they join
    -> atoms: the ink between cuts (whole pieces where nothing is cut), left to right
    -> candidate glyphs: one atom, or neighbouring atoms together (a whole piece, a digit
       drawn with a pen lift, part of a piece between two cuts), when no wider than a digit
    -> every candidate read by the model, in one batch
    -> the best path through the atoms (dynamic programming, left to right): the glyphs that
       use every atom once with the least cost, each glyph costing the model's surprise at
       it, -log(its top probability), plus GLYPH_COST, and a part cut from a piece that is
       short or not a sure digit costing UNSURE_CUT_COST more: a cut must earn its place

The path's glyphs are what reading.py judges: each is a digit, or "not a digit" when its
top probability is below the weights' threshold. The cost is the model's own surprise, so
a bad cut (half a digit, a digit with a piece of its neighbour, two digits as one) loses
to the good one when the model reads the bad one as unsure: the better the reader refuses
such junk, the better the search. Out of reach: digits written over each other, and
joined-up writing, where no seam separates two digits.
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
#                   reading one digit as several
UNSURE_CUT_COST = 10.0  # nats for a part cut from a piece that is shorter than MIN_PART_HEIGHT
#                         of it or reads as a digit with less than CUT_CONFIDENCE: taken only
#                         when nothing else covers its ink
MIN_PART_HEIGHT = 0.5  # digits in a number are of a size: a shorter part is a piece of a digit
CUT_CONFIDENCE = 0.6  # letters and shapes cut into parts mostly read unsure; digits cut where
#                       they touch read sure
CUT_BELOW = 0.9  # a piece the model reads as a digit this surely is one digit: not cut
SPLIT_ASPECT = 0.6  # a piece narrower than this times its height is not cut (one digit)
MAX_CUT_PENS = 2.5  # a seam crosses at most this many pen widths of ink: where two digits
#                     join, not through the middle of one
MIN_PART_INK = 0.12  # each side of a cut, and the ink between two cuts, holds at least this
#                      share of the piece's ink (a 1 beside an 8 holds about a fifth)
SEAM_PEN = 3  # pixels of pen width the seams are found at: finer costs more, finds no more
SIDE_STEP_COST = 0.02  # ink pixels a seam's pixel of sideways travel costs: a short way round
MAX_SPAN = 8  # atoms in one glyph (a digit cut in several places, or drawn in pieces)
MAX_ATOMS = 32  # beyond this the drawing is scribbling or text: not searched
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
    twice: for each piece alone, then for every candidate glyph. No ink gives no glyphs;
    more than MAX_ATOMS atoms give one glyph a piece, unread.
    """
    pieces = preprocess.pieces(ink)
    if len(pieces.boxes) == 0:
        return Segmentation([], torch.empty(0, 10))
    if len(pieces.boxes) > MAX_ATOMS:  # the pieces themselves, for callers that count them
        return Segmentation(sorted(_whole_pieces(ink, pieces), key=_centre), None)
    alone = classify(torch.cat([g.input for g in _whole_pieces(ink, pieces)]))
    unsure = (alone.max(dim=1).values < CUT_BELOW).tolist()
    atoms, piece_of = _atoms(pieces, unsure)
    count = len(piece_of)
    if count > MAX_ATOMS:
        return Segmentation(sorted(_whole_pieces(ink, pieces), key=_centre), None)
    boxes = _boxes(atoms)
    spans, short, cut = _candidates(boxes, piece_of, pieces)
    glyphs = [_glyph(ink, atoms, boxes, span) for span in spans]
    probabilities = classify(torch.cat([g.input for g in glyphs]))
    top = probabilities.max(dim=1).values
    surprise = -torch.log(top.clamp_min(1e-12))
    unsure_cut = torch.tensor(short) | (torch.tensor(cut) & (top < CUT_CONFIDENCE))
    costs = GLYPH_COST + surprise + UNSURE_CUT_COST * unsure_cut.to(surprise.dtype)
    path = _best_path(count, spans, costs.tolist())
    return Segmentation([glyphs[k] for k in path], probabilities[path])


def _whole_pieces(ink: Ink, pieces: preprocess.Pieces) -> list[Glyph]:
    """Each piece as one glyph, in the order of pieces.boxes."""
    return [
        preprocess.glyph(ink, pieces.labels[t:b, lo:hi] == k + 1, (t, b, lo, hi))
        for k, (t, b, lo, hi) in enumerate(pieces.boxes)
    ]


def _atoms(pieces: preprocess.Pieces, to_cut: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """The pieces, those `to_cut` cut along their seams: the atom of every ink pixel,
    numbered 1, 2, ... left to right (by the centres of their boxes), 0 on paper; and the
    piece (0, 1, ...) each atom comes from."""
    atoms = np.zeros_like(pieces.labels)
    piece_of: list[int] = []
    for k, (top, bottom, left, right) in enumerate(pieces.boxes):
        own = pieces.labels[top:bottom, left:right] == k + 1
        parts = cut(own, pieces.pen) if to_cut[k] else own.astype(int)
        atoms[top:bottom, left:right][own] = len(piece_of) + parts[own]
        piece_of += [k] * int(parts.max())
    found = ndimage.find_objects(atoms)
    present = [i for i, s in enumerate(found) if s is not None]  # a cut may leave a part empty
    centres = [(found[i][1].start + found[i][1].stop) / 2 for i in present]
    ranked = np.array(present)[np.argsort(centres, kind="stable")]
    order = np.zeros(len(found) + 1, int)
    order[ranked + 1] = np.arange(1, len(ranked) + 1)
    return order[atoms], np.array(piece_of)[ranked]


def cut(own: np.ndarray, pen: float) -> np.ndarray:
    """A piece (a boolean ink crop, rows x columns) cut where it may be two digits or more:
    each pixel's part, 1, 2, ... from the left (0 on paper), the parts split by seams.

    A seam runs from the top row to the bottom one and crosses the least ink that it can
    (`_seams`: dynamic programming, as seam carving finds its seams, Avidan and Shamir, 2007,
    "Seam carving for content-aware image resizing"). The seams kept cross
    at most MAX_CUT_PENS pen widths (`pen`, pixels) of ink and leave MIN_PART_INK of the
    piece's ink on each side and between them, the cheapest first. A piece narrower than
    SPLIT_ASPECT of its height is one part. Training cuts touching digits with it too
    (synth.cut_digits), so the reader learns the parts it will be shown."""
    height, width = own.shape
    parts = own.astype(int)
    if width < SPLIT_ASPECT * height:
        return parts
    scale = max(1, int(pen / SEAM_PEN))  # seams are found on the ink shrunk by this
    small = _shrunk(own, scale)
    cost, seams = _seams(small)
    cost = cost * scale
    seams = np.repeat(np.minimum(seams * scale, width), scale, axis=0)[:height]
    before = np.concatenate([np.zeros((height, 1)), own.cumsum(axis=1)], axis=1)
    left_ink = before[np.arange(height)[:, None], seams].sum(axis=0)  # ink left of each seam
    total = own.sum()
    least = MIN_PART_INK * total
    fine = (cost <= MAX_CUT_PENS * pen) & (left_ink >= least) & (total - left_ink >= least)
    kept: list[int] = []
    for seam in sorted(np.flatnonzero(fine), key=lambda e: cost[e]):
        if all(
            abs(left_ink[seam] - left_ink[other]) >= least
            and not _crossing(seams[:, seam], seams[:, other])
            for other in kept
        ):
            kept.append(int(seam))
    columns = np.arange(width)
    for seam in kept:  # a pixel right of a seam is in the part after it
        parts += own & (columns[None, :] >= seams[:, seam : seam + 1])
    return parts


def _shrunk(own: np.ndarray, scale: int) -> np.ndarray:
    """The boolean picture shrunk `scale` times each way: each pixel the share of its block
    that is ink (so a gap narrower than a block stays cheaper to pass than ink)."""
    height, width = own.shape
    padded = np.pad(own, ((0, -height % scale), (0, -width % scale)))
    blocks = padded.reshape(padded.shape[0] // scale, scale, padded.shape[1] // scale, scale)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _crossing(one: np.ndarray, other: np.ndarray) -> bool:
    """Whether two seams (the columns where each divides each row) cross."""
    return bool((one < other).any() and (one > other).any())


def _seams(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each column of the middle row, the cheapest seam from the top row to the bottom
    one through it: its cost (the ink it crosses, pixels, plus SIDE_STEP_COST a pixel of
    sideways travel), and (rows, columns) where it divides each row (a pixel in a column at
    or right of it is right of the seam).

    A seam goes down one row at a time, straight or one column aside, and may also travel
    sideways within a row: so it can pass under the bar of a 7 or over the tail of a 2 to the
    gap beyond, as a drop of water falls between two digits and slides along their ink
    (the drop-fall cuts of Congedo, Dimauro, Impedovo and Pirlo, 1995). Seams through
    different columns of the middle row take different ways; the cheapest ending at each
    bottom column would mostly share one."""
    height, width = ink.shape
    middle = height // 2
    columns = np.arange(width)
    down, up = _fall(ink), _fall(ink[::-1])
    cost = down[0][middle] + up[0][height - 1 - middle] - ink[middle]
    seams = np.empty((height, width), int)
    seams[: middle + 1] = _trace(down, middle, columns)
    seams[middle:] = _trace(up, height - 1 - middle, columns)[::-1]
    return cost, seams


def _fall(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The least cost of a seam from the top row to each pixel (rows, columns), and for each
    pixel the column where that seam came down into its row, and the column of the row
    above it came from."""
    height, width = ink.shape
    columns = np.arange(width)
    steps = ink + SIDE_STEP_COST  # the cost of entering a pixel sideways
    cost = np.empty((height, width))
    entered = np.empty((height, width), int)
    came = np.empty((height, width), int)
    cost[0], entered[0], came[0] = ink[0], columns, columns
    for row in range(1, height):
        padded = np.pad(cost[row - 1], 1, constant_values=np.inf)
        options = np.stack([padded[1:-1], padded[:-2], padded[2:]])  # straight, from left, right
        best = options.argmin(axis=0)
        came[row] = columns + np.array([0, -1, 1])[best]
        cost[row], entered[row] = _slide(ink[row] + options[best, columns], steps[row])
    return cost, entered, came


def _trace(fall: tuple[np.ndarray, np.ndarray, np.ndarray], row: int, at: np.ndarray) -> np.ndarray:
    """Rows 0 to `row` of the seams (from _fall) that end at columns `at` of `row`: in each
    row, the middle of the stretch the seam travels along it."""
    _, entered, came = fall
    seams = np.empty((row + 1, len(at)), int)
    for r in range(row, -1, -1):
        start = entered[r, at]
        seams[r] = (np.minimum(start, at) + np.maximum(start, at) + 1) // 2
        at = came[r, start]
    return seams


def _slide(down: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row's least costs after sideways travel: from the column a seam came down into
    (costs `down`) to any other, each pixel entered costing `steps`; and, for each column,
    the column the cheapest seam came down into."""
    columns = np.arange(len(down))
    best, entry = down.copy(), columns.copy()
    for order in (columns, columns[::-1]):  # rightwards, then leftwards
        walked = np.cumsum(steps[order]) - steps[order][0]  # from the first column of the order
        relative = down[order] - walked
        running = np.minimum.accumulate(relative)
        source = np.maximum.accumulate(np.where(relative <= running, np.arange(len(down)), 0))
        total = running + walked
        better = total < best[order]
        best[order[better]] = total[better]
        entry[order[better]] = order[source[better]]
    return best, entry


def _boxes(atoms: np.ndarray) -> np.ndarray:
    """Each atom's box: (count, 4) top, bottom, left, right (exclusive)."""
    found = ndimage.find_objects(atoms)
    return np.array([(r.start, r.stop, c.start, c.stop) for r, c in found]).reshape(-1, 4)


def _candidates(
    boxes: np.ndarray, piece_of: np.ndarray, pieces: preprocess.Pieces
) -> tuple[list[tuple[int, int]], list[bool], list[bool]]:
    """The runs of neighbouring atoms (first, last + 1) that may be one glyph: every atom
    alone, and up to MAX_SPAN together when they are no wider than a digit (MAX_ASPECT)
    and leave no blank between them wider than MAX_GAP of their height or MAX_GAP_PENS pen
    widths; and for each, whether it is short (part of a piece, less than MIN_PART_HEIGHT
    of that piece's height: an L's foot, an A's leg) and whether it is cut (part of a
    piece, not all of it)."""
    heights = pieces.boxes[:, 1] - pieces.boxes[:, 0]
    atoms_in = np.bincount(piece_of, minlength=len(pieces.boxes))
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
                continue  # a longer run may be taller, or fill the blank
            taken = np.bincount(piece_of[first:last], minlength=len(pieces.boxes))
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
