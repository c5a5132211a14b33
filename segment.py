"""Where each digit ends: the model judges the cuts (recognition-based segmentation).

After LeCun, Bottou, Bengio and Haffner (1998), "Gradient-based learning applied to
document recognition", section V (heuristic over-segmentation, the segmentation graph and
its best path), as their cheque reader did:

    the ink's pieces (preprocess.pieces)
    -> candidate cuts through each piece: seams from top to bottom that cross the least
       ink (thin necks and valleys of the ink, where touching digits usually join)
    -> atoms: the ink between cuts, and whole pieces, left to right
    -> candidate glyphs: one atom, or up to MAX_SPAN neighbouring atoms together (a piece,
       pieces drawn after a pen lift, part of a piece between two cuts)
    -> every candidate read by the model, in one batch
    -> the best path through the atoms: the glyphs that use every atom once, left to right,
       with the least cost: each glyph costs GLYPH_COST, and each of its atoms the
       model's surprise at the glyph, -log(its top probability)

The path's glyphs are what reading.py judges: each is a digit, or "not a digit" when its
top probability is below the weights' threshold. The cost is the model's own surprise,
so a bad cut (half a digit, a digit with a piece of its neighbour, two digits as one)
loses to the good one when the model reads the bad one as unsure. It is counted for every
atom the glyph covers, as the evidence for each piece of ink: otherwise a glyph that is not
a digit, at the most surprise a reader trained to be unsure of such things gives (log 10),
would absorb its neighbours for free. GLYPH_COST is the prior against splitting one digit
into several that each look like a digit.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage

import preprocess
from preprocess import Glyph, Ink

# Measured by benchmarks/heldout.py on drawings training never saw (README, "Reading a number").
GLYPH_COST = 0.3  # nats a glyph costs on top of -log(top probability)
MAX_SPAN = 4  # atoms in one glyph: a 4 drawn in two strokes and cut once more, a 5 with its bar
MAX_ATOMS = 24  # more atoms than this is scribbling or text: not searched (3 atoms a digit)
MAX_ASPECT = 1.7  # a glyph of several atoms wider than this times its height is not one digit:
#                   of MNIST's 60,000 training digits 99.9% are narrower than 1.67
MAX_GAP = 0.35  # nor one whose atoms leave a blank wider than this times its height between them
MAX_CUT_PENS = 2.5  # a seam crossing more ink than this many pen widths is no joint of two digits
MIN_PART_PENS = 1.0  # each side of a cut spans at least a pen width across...
MIN_PART_WIDTH = 0.1  # ...and this share of the piece's height (a 1 is narrow, but not a sliver)
MIN_PART_HEIGHT = 0.5  # and this share of its height up and down: digits in a number are of a
#                        size, so a part that is not is a piece of one (an L's foot, an A's leg)
DRIFT_COST = 0.05  # ink pixels a seam's sideways step costs: through paper a seam goes straight

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
    atoms = _atoms(pieces)
    count = len(_boxes(atoms))
    if count == 0:
        return Segmentation([], torch.empty(0, 10))
    if count > MAX_ATOMS:  # the pieces themselves, for callers that count them
        unread = [
            preprocess.glyph(ink, pieces.labels[t:b, lo:hi] == k + 1, (t, b, lo, hi))
            for k, (t, b, lo, hi) in enumerate(pieces.boxes)
        ]
        return Segmentation(sorted(unread, key=_centre), None)
    spans = _candidates(atoms)
    glyphs = [_glyph(ink, atoms, span) for span in spans]
    probabilities = classify(torch.cat([g.input for g in glyphs]))
    surprise = -torch.log(probabilities.max(dim=1).values.clamp_min(1e-12))
    sizes = torch.tensor([last - first for first, last in spans], dtype=surprise.dtype)
    path = _best_path(count, spans, (GLYPH_COST + sizes * surprise).tolist())
    return Segmentation([glyphs[k] for k in path], probabilities[path])


def _atoms(pieces: preprocess.Pieces) -> np.ndarray:
    """Each piece cut where touching digits may join: the atom of every ink pixel, numbered
    1, 2, ... left to right (by the centre of their boxes), 0 on paper."""
    atoms = np.zeros_like(pieces.labels)
    count = 0
    for k, (top, bottom, left, right) in enumerate(pieces.boxes):
        own = pieces.labels[top:bottom, left:right] == k + 1
        parts = _parts(own, _cuts(own, pieces.pen))
        atoms[top:bottom, left:right][own] = count + 1 + parts[own]
        count += int(parts[own].max()) + 1
    if count == 0:
        return atoms
    centres = [(c.start + c.stop) / 2 for _, c in ndimage.find_objects(atoms)]
    order = np.zeros(count + 1, int)
    order[1:][np.argsort(centres, kind="stable")] = np.arange(1, count + 1)
    return order[atoms]


def _cuts(own: np.ndarray, pen: float) -> list[np.ndarray]:
    """Where a piece (a boolean ink crop) may be two digits or more: seams, each the column
    it takes in every row, left to right. A seam is the path from top to bottom through the
    least ink (a step sideways costs DRIFT_COST), so it goes through a neck or a valley of
    the ink; those ending at a local minimum of the ink crossed, crossing at most
    MAX_CUT_PENS pen widths, are tried cheapest first and kept when both sides stay wider
    than a sliver."""
    height, width = own.shape
    min_part = max(MIN_PART_PENS * pen, MIN_PART_WIDTH * height)
    if width < 2 * min_part:
        return []
    crossed, steps = _seam_costs(own.astype(np.float32))
    reach = int(min_part)
    lowest = ndimage.minimum_filter1d(crossed, 2 * reach + 1, mode="nearest")
    ends = np.flatnonzero(
        (crossed <= lowest) & (crossed <= MAX_CUT_PENS * pen) & (np.arange(width) >= min_part)
    )
    ends = ends[ends <= width - min_part]
    runs = np.split(ends, np.flatnonzero(np.diff(ends) > 1) + 1) if ends.size else []
    kept: list[np.ndarray] = []
    for end in sorted((run[len(run) // 2] for run in runs), key=lambda e: crossed[e]):
        trial = _uncrossed(kept + [_trace(steps, int(end))])
        if _big_enough(own, _parts(own, trial), min_part):
            kept = trial
    return kept


def _seam_costs(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seam carving's dynamic programme (Avidan and Shamir, 2007) from top to bottom: the
    least ink crossed by a path ending at each bottom column, and each pixel's step (-1, 0,
    +1: the column it came from, relative to its own)."""
    height, width = ink.shape
    total = ink[0].copy()
    steps = np.zeros((height, width), np.int8)
    for row in range(1, height):
        straight = total
        from_left = np.concatenate(([np.inf], total[:-1])) + DRIFT_COST
        from_right = np.concatenate((total[1:], [np.inf])) + DRIFT_COST
        best = np.minimum(straight, np.minimum(from_left, from_right))
        steps[row] = np.where(straight <= best, 0, np.where(from_left <= best, -1, 1))
        total = best + ink[row]
    return total, steps


def _trace(steps: np.ndarray, end: int) -> np.ndarray:
    """The seam ending at bottom column `end`: its column in every row."""
    columns = np.empty(len(steps), int)
    columns[-1] = end
    for row in range(len(steps) - 1, 0, -1):
        columns[row - 1] = columns[row] + steps[row, columns[row]]
    return columns


def _uncrossed(seams: list[np.ndarray]) -> list[np.ndarray]:
    """Seams sorted by their bottom column, each kept at or right of the one before (two
    least-ink paths may swap places on a diagonal)."""
    ordered = sorted(seams, key=lambda s: s[-1])
    return list(np.maximum.accumulate(np.array(ordered), axis=0)) if ordered else []


def _parts(own: np.ndarray, seams: list[np.ndarray]) -> np.ndarray:
    """For each pixel of the crop, how many seams lie at or left of it: 0 for the part left
    of every cut, 1 between the first two... (a seam's own pixels go right)."""
    columns = np.arange(own.shape[1])
    parts = np.zeros(own.shape, int)
    for seam in seams:
        parts += columns[None, :] >= seam[:, None]
    return parts


def _big_enough(own: np.ndarray, parts: np.ndarray, min_part: float) -> bool:
    """Whether each part's ink spans at least `min_part` columns and MIN_PART_HEIGHT of the
    piece's rows."""
    for part in range(int(parts.max()) + 1):
        ink = own & (parts == part)
        columns, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
        if columns.size == 0 or columns[-1] + 1 - columns[0] < min_part:
            return False
        if rows[-1] + 1 - rows[0] < MIN_PART_HEIGHT * len(own):
            return False
    return True


def _boxes(atoms: np.ndarray) -> np.ndarray:
    """Each atom's box: (count, 4) top, bottom, left, right (exclusive)."""
    found = ndimage.find_objects(atoms)
    return np.array([(r.start, r.stop, c.start, c.stop) for r, c in found]).reshape(-1, 4)


def _candidates(atoms: np.ndarray) -> list[tuple[int, int]]:
    """The runs of neighbouring atoms (first, last + 1) that may be one glyph: every atom
    alone, and up to MAX_SPAN together when they are no wider than a digit (MAX_ASPECT)
    and leave no blank wider than MAX_GAP of their height between them."""
    boxes = _boxes(atoms)
    spans = []
    for first in range(len(boxes)):
        for last in range(first + 1, min(first + MAX_SPAN, len(boxes)) + 1):
            run = boxes[first:last]
            height = run[:, 1].max() - run[:, 0].min()
            width = run[:, 3].max() - run[:, 2].min()
            if last - first > 1 and (
                width > MAX_ASPECT * height or _widest_blank(run) > MAX_GAP * height
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


def _glyph(ink: Ink, atoms: np.ndarray, span: tuple[int, int]) -> Glyph:
    """The glyph of atoms span[0] + 1 to span[1] (their labels), cropped to their ink."""
    first, last = span
    inside = (atoms > first) & (atoms <= last)
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return preprocess.glyph(ink, inside[box[0] : box[1], box[2] : box[3]], box)


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
