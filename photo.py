"""The ink in a photo or scan of a sheet of paper: find the sheet, then the ink on it.

A canvas has a flat background and needs none of this (preprocess reads it directly). A
photo has a desk around the sheet, light that falls off towards the corners, the phone's
hard-edged shadow across part of it, ruled or squared lines, blur, noise and JPEG. So, on
the grayscale picture (at preprocess's working size, 256 to 511 pixels a side):

    polarity: dark ink on light paper, unless thin light marks clearly outnumber thin dark ones
    -> the sheet: the largest bright region, holes filled (a desk or fingers around it are not read)
    -> the paper under every pixel: a grey closing wider than any stroke, which follows a
       shadow's edge and the sheet's edge exactly (a step is not a stroke)
    -> ink contrast, 1 - picture / paper (a shadow dims ink and paper alike)
    -> ink: hysteresis thresholds (Canny, 1986; scikit-image's) set from the paper's own
       noise and the darkest ink's contrast
    -> ruled or squared lines removed: thin straight runs that repeat across the sheet

`ink` returns None when there is no sheet or no ink; PHOTO_HINT says what to do then.
"""

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold

PHOTO_HINT = "Photograph the digit on plain paper, filling most of the picture."
SMOOTHING = 0.7  # pixels (Gaussian sigma): takes the edge off sensor noise and JPEG blocks
THIN = 7  # pixels: a stroke narrower than this is thin, for deciding which way the ink goes
LIGHT_INK_MARGIN = 2.0  # light ink only when its thin marks are this many times the dark ones,
LIGHT_INK_LEAST = 0.001  # and cover this share of the picture (a thick pen's are too few)
SHEET_LEVEL = 0.4  # paper is at least this bright, as a share of the brightest paper; a desk,
# a table or a hand in shadow is darker. A phone's shadow on paper keeps about half the light.
SHEET_SHARE = 0.15  # a sheet smaller than this share of the picture is not one to read
SHEET_EDGE = 2  # pixels of the sheet's edge not read: the blurred step into the desk
PAPER_WINDOW = 0.2  # the closing's width, as a share of the shorter side: wider than strokes
NOISE_SIGMAS = (3.0, 6.0)  # low and high thresholds, in robust standard deviations of paper
NOISE_SAMPLE = 4  # every 4th pixel tells the paper's noise as well as all of them
MIN_CONTRAST = (0.04, 0.1)  # ...and never below these contrasts: flat paper still has grain,
INK_SHARES = (0.2, 0.4)  # nor these shares of the darkest ink's (printed lines are fainter)
LINE_LENGTH = 0.5  # a straight run this long (share of the sheet's width or height)...
LINE_WIDTH = 3.0  # ...and at most this many pixels thick on average is a printed line
LINE_SLACK = 3  # pixels: a line may wander this much across its length (a tilted photo)
LINE_GAP = 4  # pixels: a faint line's breaks, bridged
LINES_ON_PAPER = 2  # ruled paper has many lines; a lone long stroke is part of a digit...
LONE_LINE = 0.85  # ...unless it spans the sheet (a margin line)
INK_OVER_LINE = 2.0  # ink crossing a line is this many times darker than the line: kept,
INK_EDGE = 2  # and so are the pixels of its blurred edge, this close to it


def ink(gray: np.ndarray) -> np.ndarray | None:
    """Ink strength in [0, 1], white on black, of an H x W photo of a sheet (float, 0-1),
    or None when no sheet of paper, or no ink on it, can be found."""
    smooth = ndimage.gaussian_filter(gray, SMOOTHING)
    if _light_ink(smooth):
        smooth = 1 - smooth
    sheet = _sheet(smooth)
    if sheet is None:
        return None
    paper = _paper(smooth)
    contrast = np.where(sheet, 1 - smooth / np.maximum(paper, 1e-3), 0).astype(np.float32)
    faint, low, high = _thresholds(contrast[sheet])
    # Printed lines are found among all the marks above the paper's noise, and taken out
    # before the ink is followed from its darkest pixels, so that it does not run along them.
    lines = _ruled_lines(contrast > faint, contrast, sheet, high)
    found = apply_hysteresis_threshold(np.where(lines, 0, contrast), low, high)
    if not found.any():
        return None
    strength = np.where(found, contrast, 0)
    return strength / strength.max()


def _light_ink(smooth: np.ndarray) -> bool:
    """Whether the ink is lighter than the paper (chalk on a board, a negative): thin light
    marks clearly outnumber thin dark ones, and are not a few specks. Thin is narrower
    than THIN pixels: the paper inside a loop, a sheet's corner against a dark desk and
    the light's slow changes are wider, and do not count."""
    dark = ndimage.grey_closing(smooth, size=THIN) - smooth
    light = smooth - ndimage.grey_opening(smooth, size=THIN)
    level = max(MIN_CONTRAST[1], NOISE_SIGMAS[1] * _robust_sigma(dark.ravel()[::NOISE_SAMPLE]))
    light, dark = (light > level).sum(), (dark > level).sum()
    return light > max(LIGHT_INK_MARGIN * dark, LIGHT_INK_LEAST * smooth.size)


def _sheet(smooth: np.ndarray) -> np.ndarray | None:
    """The sheet of paper: the largest region at least SHEET_LEVEL as bright as the
    brightest paper, with what lies on it (the ink) filled in, less its blurred edge; None
    when no region is big enough to be the sheet."""
    bright = smooth >= SHEET_LEVEL * np.percentile(smooth, 95)
    regions, count = ndimage.label(bright)
    if count == 0:
        return None
    sizes = np.bincount(regions.ravel())[1:]
    sheet = ndimage.binary_fill_holes(regions == sizes.argmax() + 1)
    if sheet.mean() < SHEET_SHARE:
        return None
    return ndimage.minimum_filter(sheet, 2 * SHEET_EDGE + 1, mode="nearest")


def _paper(smooth: np.ndarray) -> np.ndarray:
    """The paper's brightness under every pixel: a grey closing (a dilation, then an
    erosion) by a square wider than any stroke, which lifts the strokes to the paper around
    them and keeps any wider change of light, a shadow's or the sheet's edge included.
    The picture is first extended by its edge values: mirrored instead, a corner where the
    light falls off would be a dark valley, and filled."""
    window = max(3, round(PAPER_WINDOW * min(smooth.shape)))
    padded = np.pad(smooth, window, mode="edge")
    return ndimage.grey_closing(padded, size=window)[window:-window, window:-window]


def _thresholds(values: np.ndarray) -> tuple[float, float, float]:
    """Thresholds on the sheet's contrast values: the paper's own noise (marks above it are
    faint), and the low and high ink thresholds, well above that noise and not far below
    the darkest ink's contrast. Ink is what exceeds the high one, and what joins it above
    the low one (hysteresis; Canny, 1986)."""
    sample = values[::NOISE_SAMPLE]
    centre, sigma, peak = np.median(sample), _robust_sigma(sample), values.max(initial=0)
    low, high = (
        centre + max(n * sigma, least, share * peak)
        for n, least, share in zip(NOISE_SIGMAS, MIN_CONTRAST, INK_SHARES, strict=True)
    )
    return centre + max(NOISE_SIGMAS[0] * sigma, MIN_CONTRAST[0]), low, high


def _robust_sigma(values: np.ndarray) -> float:
    """The standard deviation of the bulk of the values (1.4826 x the median absolute
    deviation), unmoved by the few that are ink."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _ruled_lines(
    marks: np.ndarray, contrast: np.ndarray, sheet: np.ndarray, ink: float
) -> np.ndarray:
    """The pixels of ruled or squared lines among the marks: thin, faint (below the ink
    contrast `ink` on average) straight runs over LINE_LENGTH of the sheet, along rows or
    columns (give or take LINE_SLACK, gaps of LINE_GAP bridged), when several repeat across
    the sheet or one spans it; ink crossing a line (much darker) and the edge of its
    strokes are not."""
    rows, cols = np.nonzero(sheet.any(axis=1))[0], np.nonzero(sheet.any(axis=0))[0]
    if rows.size == 0:
        return np.zeros_like(marks)
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    lines = np.zeros_like(marks)
    for along, span in ((1, width), (0, height)):  # rows (ruled), then columns (squared)
        # A binary opening by a straight segment, as 1-d min and max filters (fast), of the
        # ink widened across the segment so that a slightly tilted line still holds it.
        thick = ndimage.maximum_filter1d(marks, 2 * LINE_SLACK + 1, axis=1 - along)
        thick = ndimage.maximum_filter1d(thick, LINE_GAP + 1, axis=along)
        length = max(2, round(LINE_LENGTH * span))
        opened = ndimage.maximum_filter1d(
            ndimage.minimum_filter1d(thick, length, axis=along), length, axis=along
        )
        runs, count = ndimage.label(opened & marks, np.ones((3, 3), dtype=bool))
        if count == 0:
            continue
        extents = np.array([s[along].stop - s[along].start for s in ndimage.find_objects(runs)])
        shade = ndimage.mean(contrast, runs, np.arange(1, count + 1))
        # A digit's stroke is thicker, or darker (a sliver of a slanted stroke is thin).
        thin = (_thickness(runs, count, along) <= LINE_WIDTH) & (shade < ink)
        if thin.sum() >= LINES_ON_PAPER or (extents[thin] >= LONE_LINE * span).any():
            lines |= np.isin(runs, np.flatnonzero(thin) + 1)
    if lines.any():  # ink on a line, and its blurred edge, is much darker than the line
        on_line = contrast >= INK_OVER_LINE * np.median(contrast[lines])
        lines &= ~ndimage.binary_dilation(on_line, iterations=INK_EDGE)
    return lines


def _thickness(runs: np.ndarray, count: int, along: int) -> np.ndarray:
    """Each labelled run's median thickness across its length, in pixels: a stroke of a
    digit that crosses a line makes it thick only there."""
    position = np.indices(runs.shape)[along]
    per = np.bincount(
        (runs * runs.shape[along] + position).ravel(), minlength=(count + 1) * runs.shape[along]
    ).reshape(count + 1, runs.shape[along])[1:]
    return np.array([np.median(row[row > 0]) for row in per])
